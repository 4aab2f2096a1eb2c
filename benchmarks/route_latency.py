"""Latency and throughput of POST /route over loopback HTTP against the real service.

Starts `uvicorn --factory router.http.app:create_app` (uvloop + httptools) per bundle and worker
count, then measures p50/p99 for a ~10-token and a 256-token turn with one client, and req/s
with 1 and N concurrent keep-alive clients. Prints Markdown tables with the targets.

    .venv/bin/python benchmarks/route_latency.py                  # models/ bundles, else synthetic
    .venv/bin/python benchmarks/route_latency.py --build int8 --workers 1 --workers 2
    .venv/bin/python benchmarks/route_latency.py --bundle models/v3

Not a test: numbers depend on the machine and its load, which the report prints alongside.
"""

from __future__ import annotations

import contextlib
import os
import platform
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import click
import httpx
import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(REPO))

from benchmarks.load_test import serve as serve_bundle  # noqa: E402
from router.core.bundle import read_manifest, resolve_bundle_dir  # noqa: E402

SHORT_TURN = "What is the capital of France, in one word?"  # ~10 BERT tokens + [CLS]/[SEP]
LONG_TOKENS = 256
TARGET_SHORT_P50_MS = 5.0
TARGET_LONG_P50_MS = 25.0
TARGET_INT8_RPS = 300.0
DEFAULT_CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "tierwise"


@dataclass
class Result:
    label: str
    quantization: str
    workers: int
    short_ms: list[float] = field(default_factory=list)
    long_ms: list[float] = field(default_factory=list)
    rps: dict[int, float] = field(default_factory=dict)
    # CPU the benchmark's own client threads used during each req/s run, in cores.
    client_cores: dict[int, float] = field(default_factory=dict)
    fallbacks: int = 0
    requests: int = 0


def long_turn(bundle_dir: Path, tokens: int = LONG_TOKENS) -> str:
    """A text the bundle's tokenizer turns into exactly `tokens` ids, specials included."""
    from tokenizers import Tokenizer

    manifest = read_manifest(bundle_dir)
    tokenizer = Tokenizer.from_file(str(bundle_dir / manifest.embedder.tokenizer))
    tokenizer.no_truncation()
    sentence = "Explain how a write-ahead log lets a database recover after a crash, step by step."
    words = (sentence + " ") * 40
    ids = tokenizer.encode(words).ids
    if len(ids) < tokens:
        raise click.ClickException(f"could not build a {tokens}-token text ({len(ids)} tokens)")
    # Drop the special tokens, keep tokens-2 content ids, and decode back to text.
    content = tokenizer.encode(words, add_special_tokens=False).ids[: tokens - 2]
    text: str = tokenizer.decode(content)
    got = len(tokenizer.encode(text).ids)
    if abs(got - tokens) > 2:
        raise click.ClickException(f"long turn has {got} tokens, wanted {tokens}")
    return text


@contextlib.contextmanager
def serve(bundle_dir: Path, workers: int, deadline_ms: float, threads: int) -> Iterator[str]:
    """The real service on a loopback port (benchmarks.load_test.serve); yields its base URL
    once /readyz answers."""
    env = {"ROUTER_DEADLINE_MS": str(deadline_ms), "ROUTER_ONNX_THREADS": str(threads)}
    with serve_bundle(bundle_dir, env=env, workers=workers) as server:
        yield server.url


def route_once(client: httpx.Client, text: str) -> tuple[float, bool]:
    """(wall ms, fallback?) for one POST /route."""
    body = {"messages": [{"role": "user", "content": text}]}
    start = time.perf_counter()
    resp = client.post("/route", json=body)
    elapsed = (time.perf_counter() - start) * 1000
    if resp.status_code != 200:
        raise click.ClickException(f"/route answered {resp.status_code}: {resp.text[:300]}")
    return elapsed, bool(resp.json().get("fallback"))


def latencies(base: str, text: str, count: int, max_s: float, result: Result) -> list[float]:
    """One keep-alive client, sequential requests: at most `count` or `max_s` seconds."""
    out: list[float] = []
    stop = time.monotonic() + max_s
    with httpx.Client(base_url=base, timeout=10.0) as client:
        route_once(client, text)  # open the connection outside the measurement
        while len(out) < count and time.monotonic() < stop:
            ms, fallback = route_once(client, text)
            out.append(ms)
            result.fallbacks += fallback
            result.requests += 1
    return out


def throughput(base: str, text: str, clients: int, seconds: float, result: Result) -> float:
    """Requests/s with `clients` threads, each with its own keep-alive connection."""
    counts = [0] * clients
    falls = [0] * clients
    barrier = threading.Barrier(clients + 1)
    stop = [0.0]

    def run(i: int) -> None:
        with httpx.Client(base_url=base, timeout=10.0) as client:
            route_once(client, text)
            barrier.wait()
            while time.monotonic() < stop[0]:
                _, fallback = route_once(client, text)
                counts[i] += 1
                falls[i] += fallback

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(clients)]
    for t in threads:
        t.start()
    stop[0] = time.monotonic() + seconds + 1e3  # parked until every client is connected
    barrier.wait()
    start = time.monotonic()
    cpu_start = time.process_time()
    stop[0] = start + seconds
    for t in threads:
        t.join(timeout=seconds + 30)
    elapsed = time.monotonic() - start
    result.client_cores[clients] = (time.process_time() - cpu_start) / elapsed
    result.fallbacks += sum(falls)
    result.requests += sum(counts)
    return sum(counts) / elapsed


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def build_synthetic(quantizations: tuple[str, ...], cache_dir: Path, work: Path) -> list[Path]:
    """Exported MiniLM (cached) + a random-data classifier, one bundle per quantization."""
    from training.embedder_export import cached_embedder, read_cached_spec
    from training.synthetic_bundle import build_synthetic_bundle

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    bundles = []
    for q in quantizations:
        click.echo(f"building synthetic {q} bundle (embedder cache {cache_dir})", err=True)
        entry = cached_embedder(cache_dir / "embedders", q)  # type: ignore[arg-type]
        spec = read_cached_spec(entry)
        bundles.append(build_synthetic_bundle(work / f"synthetic-{q}", entry, spec, f"synth-{q}"))
    return bundles


def shipped_bundles() -> list[Path]:
    models = REPO / "models"
    if not models.is_dir():
        return []
    with contextlib.suppress(Exception):
        return [resolve_bundle_dir(models)]
    return sorted(p.parent for p in models.glob("*/manifest.json"))


def verdict(ok: bool) -> str:
    return "pass" if ok else "FAIL"


def render(results: list[Result], clients: int, info: str) -> str:
    lines = [
        f"Machine: {info}",
        "",
        "| bundle | quant | workers | short p50 ms | short p99 ms | 256-tok p50 ms | "
        f"256-tok p99 ms | req/s c=1 | req/s c={clients} | client CPU c={clients} | fallbacks |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r.label} | {r.quantization} | {r.workers} | {pct(r.short_ms, 50):.2f} | "
            f"{pct(r.short_ms, 99):.2f} | {pct(r.long_ms, 50):.2f} | {pct(r.long_ms, 99):.2f} | "
            f"{r.rps.get(1, float('nan')):.0f} | {r.rps.get(clients, float('nan')):.0f} | "
            f"{r.client_cores.get(clients, float('nan')):.2f} cores | {r.fallbacks}/{r.requests} |"
        )
    lines += [
        "",
        "| target | bundle | workers | measured | target | ratio | result |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for r in results:
        short, long_ = pct(r.short_ms, 50), pct(r.long_ms, 50)
        lines.append(
            f"| short-turn p50 | {r.label} | {r.workers} | {short:.2f} ms | < {TARGET_SHORT_P50_MS:g}"
            f" ms | {short / TARGET_SHORT_P50_MS:.2f}x | {verdict(short < TARGET_SHORT_P50_MS)} |"
        )
        lines.append(
            f"| 256-token p50 | {r.label} | {r.workers} | {long_:.2f} ms | < {TARGET_LONG_P50_MS:g}"
            f" ms | {long_ / TARGET_LONG_P50_MS:.2f}x | {verdict(long_ < TARGET_LONG_P50_MS)} |"
        )
        if r.quantization == "int8":
            best = max(r.rps.values(), default=0.0)
            lines.append(
                f"| int8 req/s (best of c=1,{clients}) | {r.label} | {r.workers} | {best:.0f} | "
                f">= {TARGET_INT8_RPS:g} | {best / TARGET_INT8_RPS:.2f}x | "
                f"{verdict(best >= TARGET_INT8_RPS)} |"
            )
    return "\n".join(lines)


@click.command()
@click.option(
    "--bundle",
    "bundles",
    multiple=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Bundle folder (or folder with DEFAULT). Repeatable. Default: models/, else --build.",
)
@click.option(
    "--build",
    "builds",
    multiple=True,
    type=click.Choice(["fp32", "int8"]),
    help="Also build a synthetic bundle with this embedder quantization. Repeatable.",
)
@click.option("--workers", "worker_counts", multiple=True, type=int, help="Default: 1.")
@click.option("--clients", default=4, show_default=True, help="Concurrent clients for req/s.")
@click.option("--short-requests", default=400, show_default=True)
@click.option("--long-requests", default=100, show_default=True)
@click.option("--seconds", default=5.0, show_default=True, help="Per req/s measurement.")
@click.option(
    "--deadline-ms",
    default=1000.0,
    show_default=True,
    help="ROUTER_DEADLINE_MS for the server; high so latency is scoring, not the fallback.",
)
@click.option(
    "--onnx-threads",
    default=1,
    show_default=True,
    help="ROUTER_ONNX_THREADS: intra-op threads per worker (1 is the service default).",
)
@click.option(
    "--cache-dir",
    default=DEFAULT_CACHE,
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Where exported embedders are cached between runs.",
)
def main(
    bundles: tuple[Path, ...],
    builds: tuple[str, ...],
    worker_counts: tuple[int, ...],
    clients: int,
    short_requests: int,
    long_requests: int,
    seconds: float,
    deadline_ms: float,
    onnx_threads: int,
    cache_dir: Path,
) -> None:
    """Benchmark POST /route over loopback and print Markdown tables with the targets."""
    targets = list(bundles) or ([] if builds else shipped_bundles())
    if not targets and not builds:
        builds = ("fp32", "int8")
    load_before = os.getloadavg()
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="route-bench-") as tmp:
        targets += build_synthetic(builds, cache_dir, Path(tmp)) if builds else []
        for target in targets:
            bundle_dir = resolve_bundle_dir(target)
            manifest = read_manifest(bundle_dir)
            long_text = long_turn(bundle_dir)
            for workers in worker_counts or (1,):
                click.echo(f"measuring {manifest.version} with {workers} worker(s)", err=True)
                r = Result(manifest.version, manifest.embedder.quantization, workers)
                with serve(bundle_dir, workers, deadline_ms, onnx_threads) as base:
                    throughput(base, SHORT_TURN, clients, 1.0, Result("", "", 0))  # warm up
                    r.short_ms = latencies(base, SHORT_TURN, short_requests, 30, r)
                    r.long_ms = latencies(base, long_text, long_requests, 60, r)
                    for c in sorted({1, clients}):
                        r.rps[c] = throughput(base, SHORT_TURN, c, seconds, r)
                results.append(r)
    load_after = os.getloadavg()
    info = (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"load avg {load_before[0]:.2f} before / {load_after[0]:.2f} after, "
        f"python {platform.python_version()}, onnx_threads={onnx_threads}, "
        f"deadline {deadline_ms:g} ms, {clients} clients for req/s"
    )
    click.echo(render(results, clients, info))


if __name__ == "__main__":
    main()

"""Bounded loopback load test of the real service, and a soak with model reloads mid-run.

Starts `uvicorn --factory router.http.app:create_app` on a loopback socket (or uses --url, loopback
only), then runs closed-loop clients (each sends its next request as soon as the last one is
answered, so the server runs at its capacity for that concurrency) for --duration seconds or
--max-requests, whichever comes first, and prints requests, errors, fallbacks, p50/p99, req/s.

    .venv/bin/python benchmarks/load_test.py --model-dir models            # 4 and 16 clients, 60 s
    .venv/bin/python benchmarks/load_test.py --model-dir models --soak --reload-to <version>
    .venv/bin/python benchmarks/load_test.py --duration 10 --clients 8

--soak reloads the model (POST /admin/reload) --reloads times during the run, alternating between
the live bundle and --reload-to, and exits 1 unless every request got a valid decision. An error
is anything but a 200 with a valid RouteDecision; fallbacks (deadline misses under load) are
valid answers and are counted separately.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import click
import httpx
import numpy as np

REPO = Path(__file__).resolve().parents[1]
LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
TIERS = frozenset({"haiku", "sonnet", "opus"})
# Hard ceilings whatever the flags say: this is a bounded test, not a traffic generator.
MAX_DURATION_S = 600.0
MAX_REQUESTS = 1_000_000
MAX_CLIENTS = 64
NODELAY = (socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

PAYLOADS: list[dict[str, object]] = [
    {"prompt": "hello, what time is it?"},
    {"prompt": "Prove that the integral of exp(-x^2) over the real line is sqrt(pi). " * 4},
    {
        "system": "You are a coding agent.",
        "tools": [{"name": "bash", "input_schema": {"type": "object"}}],
        "messages": [
            {"role": "user", "content": "fix the failing test"},
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": "t1", "name": "bash", "input": {}}],
            },
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "x" * 2000}],
            },
        ],
    },
]


@dataclass
class LoadResult:
    clients: int
    seconds: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    fallbacks: int = 0
    versions: Counter[str] = field(default_factory=Counter)
    reloads: list[str] = field(default_factory=list)

    @property
    def requests(self) -> int:
        return len(self.latencies_ms) + sum(self.errors.values())

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    def pct(self, q: float) -> float:
        return float(np.percentile(self.latencies_ms, q)) if self.latencies_ms else float("nan")

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def check_decision(body: object) -> str | None:
    """None if `body` is a valid RouteDecision (the fields a caller relies on), else why not."""
    if not isinstance(body, dict):
        return "not an object"
    if body.get("tier") not in TIERS:
        return f"tier {body.get('tier')!r}"
    if not str(body.get("model", "")).startswith("claude-"):
        return f"model {body.get('model')!r}"
    if not isinstance(body.get("model_version"), str) or not isinstance(body.get("fallback"), bool):
        return "model_version/fallback missing"
    return None


async def _client_loop(
    client: httpx.AsyncClient, result: LoadResult, stop_at: float, budget: list[int], seed: int
) -> None:
    i = seed
    while time.monotonic() < stop_at and budget[0] > 0:
        budget[0] -= 1
        payload = PAYLOADS[i % len(PAYLOADS)]
        i += 1
        start = time.perf_counter()
        try:
            r = await client.post("/route", json=payload)
        except httpx.HTTPError as exc:
            result.errors[type(exc).__name__] += 1
            continue
        elapsed = (time.perf_counter() - start) * 1000
        if r.status_code != 200:
            result.errors[f"HTTP {r.status_code}"] += 1
            continue
        try:
            body = r.json()
        except json.JSONDecodeError:
            result.errors["invalid JSON"] += 1
            continue
        problem = check_decision(body)
        if problem is not None:
            result.errors[f"invalid decision: {problem}"] += 1
            continue
        result.latencies_ms.append(elapsed)
        result.fallbacks += body["fallback"]
        result.versions[body["model_version"]] += 1


async def _reloader(
    client: httpx.AsyncClient, result: LoadResult, duration_s: float, targets: list[str], n: int
) -> None:
    """Reload n times, evenly spaced through the run, cycling through `targets`."""
    for k in range(n):
        await asyncio.sleep(duration_s / (n + 1))
        target = targets[k % len(targets)]
        r = await client.post("/admin/reload", json={"path": target}, timeout=60)
        outcome = r.json().get("model_version") if r.status_code == 200 else r.text[:200]
        result.reloads.append(f"{target}: HTTP {r.status_code} {outcome}")


async def run_load(
    base_url: str,
    clients: int,
    duration_s: float,
    max_requests: int = MAX_REQUESTS,
    reload_targets: list[str] | None = None,
    reloads: int = 1,
    token: str | None = None,
) -> LoadResult:
    """Closed-loop load from `clients` keep-alive connections; optional reloads mid-run."""
    host = urlparse(base_url).hostname
    if host not in LOOPBACK:
        raise click.UsageError(f"--url must be loopback ({sorted(LOOPBACK)}), not {host!r}")
    clients = min(clients, MAX_CLIENTS)
    duration_s = min(duration_s, MAX_DURATION_S)
    result = LoadResult(clients)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    # One connection per load client; the reloader has its own client, so no spare connection
    # idles in the pool long enough to race the server's keep-alive close.
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    # httpx writes headers and body separately: without TCP_NODELAY, Nagle + delayed ACK add
    # ~40 ms to every request and the test would measure the kernel, not the service.
    transport = httpx.AsyncHTTPTransport(limits=limits, socket_options=[NODELAY])
    async with httpx.AsyncClient(
        base_url=base_url, headers=headers, transport=transport, timeout=30
    ) as client:
        start = time.monotonic()
        budget = [min(max_requests, MAX_REQUESTS)]
        tasks = [
            _client_loop(client, result, start + duration_s, budget, seed=i) for i in range(clients)
        ]
        async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=60) as admin:
            if reload_targets:
                tasks.append(_reloader(admin, result, duration_s, reload_targets, reloads))
            await asyncio.gather(*tasks)
        result.seconds = time.monotonic() - start
    return result


# What each uvicorn worker logs (at info) once its lifespan has started and it accepts requests.
STARTUP_COMPLETE = "Application startup complete."


def wait_ready(base_url: str, proc: subprocess.Popen[bytes], timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before it was ready")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{base_url}/readyz", timeout=1).status_code == 200:
                return
        time.sleep(0.1)
    raise RuntimeError(f"server at {base_url} not ready after {timeout_s:.0f} s")


def wait_started(
    log: Path, proc: subprocess.Popen[bytes], workers: int, timeout_s: float = 60
) -> None:
    """Until each of `workers` uvicorn workers has logged its start-up complete (at log level
    info): /readyz is answered by the first one ready, and a load sent then would find only it."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before it was ready")
        if log.read_text(errors="replace").count(STARTUP_COMPLETE) >= workers:
            return
        time.sleep(0.1)
    raise RuntimeError(f"not all {workers} workers started after {timeout_s:.0f} s")


@dataclass
class Server:
    url: str
    pid: int
    log: Path  # the server's stdout+stderr (a fallback under overload logs one line)

    def log_tail(self, lines: int = 20) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


@contextlib.contextmanager
def serve(
    model_dir: Path, env: dict[str, str] | None = None, workers: int = 1, src: Path = REPO
) -> Iterator[Server]:
    """uvicorn on a loopback socket we bind and hand over (--fd: no port race); stops it on
    exit. Its output goes to a temporary log file, shown if it fails to start. `src` is the
    source tree it runs (another checkout, to compare two versions side by side)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # uvicorn --fd wraps the socket as AF_UNIX, so uvloop never sets TCP_NODELAY on accepted
    # connections; set on the listening socket, Linux passes it on to each of them.
    sock.setsockopt(*NODELAY)
    sock.bind(("127.0.0.1", 0))
    sock.set_inheritable(True)
    port = sock.getsockname()[1]
    cmd = [
        sys.executable, "-m", "uvicorn", "--factory", "router.http.app:create_app",
        "--fd", str(sock.fileno()), "--loop", "uvloop", "--http", "httptools",
        "--no-access-log", "--log-level", "info" if workers > 1 else "warning",
        "--timeout-keep-alive", "75",
        "--workers", str(workers),
    ]  # fmt: skip
    full_env = {
        **os.environ,
        "ROUTER_MODEL_DIR": str(model_dir),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        **(env or {}),
    }
    with tempfile.TemporaryDirectory(prefix="tierwise-load-") as tmp:
        if workers > 1 and "ROUTER_SESSION_URL" not in full_env:
            # Several workers need a shared session store (they refuse to start without one).
            full_env["ROUTER_SESSION_URL"] = f"sqlite:///{tmp}/state.db"
        server = Server(f"http://127.0.0.1:{port}", 0, Path(tmp) / "server.log")
        with server.log.open("wb") as log:
            proc = subprocess.Popen(
                cmd, cwd=src, env=full_env, pass_fds=(sock.fileno(),), stdout=log, stderr=log
            )
        server.pid = proc.pid
        try:
            try:
                wait_ready(server.url, proc)
                if workers > 1:
                    wait_started(server.log, proc, workers)
            except RuntimeError as exc:
                raise RuntimeError(f"{exc}; server log:\n{server.log_tail()}") from None
            yield server
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            sock.close()


def render(results: list[LoadResult]) -> str:
    lines = [
        "| clients | requests | errors | fallbacks | p50 ms | p99 ms | req/s | models seen |",
        "|--:|--:|--:|--:|--:|--:|--:|---|",
    ]
    for r in results:
        versions = ", ".join(f"{v} x{n}" for v, n in sorted(r.versions.items()))
        lines.append(
            f"| {r.clients} | {r.requests} | {r.error_count} | {r.fallbacks} | "
            f"{r.pct(50):.1f} | {r.pct(99):.1f} | {r.rps:.0f} | {versions} |"
        )
    for r in results:
        for kind, n in r.errors.most_common():
            lines.append(f"\n{r.clients} clients: {n} x {kind}")
        for reload in r.reloads:
            lines.append(f"\n{r.clients} clients: reload {reload}")
    return "\n".join(lines)


@click.command()
@click.option(
    "--model-dir",
    type=click.Path(path_type=Path),
    default=REPO / "models",
    show_default=True,
    help="Bundle folder, or models folder with a DEFAULT pointer.",
)
@click.option("--url", default=None, help="Use this running server (loopback only).")
@click.option(
    "--clients",
    "client_counts",
    type=click.IntRange(1, MAX_CLIENTS),
    multiple=True,
    help="Concurrent clients per run; repeat for several runs. [default: 4 16]",
)
@click.option(
    "--duration",
    type=click.FloatRange(0.5, MAX_DURATION_S),
    default=60.0,
    show_default=True,
    help="Seconds per run.",
)
@click.option(
    "--max-requests",
    type=click.IntRange(1, MAX_REQUESTS),
    default=MAX_REQUESTS,
    show_default=True,
    help="Request budget per run.",
)
@click.option("--soak", is_flag=True, help="Reload the model mid-run; exit 1 on any error.")
@click.option(
    "--reload-to",
    default=None,
    help="Bundle to reload to, e.g. <version> or models/<version> [default: re-read the live one].",
)
@click.option("--reloads", type=click.IntRange(1, 100), default=1, show_default=True)
@click.option("--deadline-ms", type=float, default=None, help="ROUTER_DEADLINE_MS for the server.")
@click.option(
    "--token",
    envvar="TIERWISE_TOKEN",
    default=None,
    help="Bearer token (caller and admin) for --url.",
)
def main(
    model_dir: Path, url: str | None, client_counts: tuple[int, ...], duration: float,
    max_requests: int, soak: bool, reload_to: str | None, reloads: int,
    deadline_ms: float | None, token: str | None,
) -> None:  # fmt: skip
    """Load (and optionally soak) the service over loopback; prints a Markdown table."""
    counts = client_counts or ((16,) if soak else (4, 16))
    env = {"ROUTER_DEADLINE_MS": str(deadline_ms)} if deadline_ms else {}
    with contextlib.ExitStack() as stack:
        server = None if url else stack.enter_context(serve(model_dir, env))
        base = url or server.url  # type: ignore[union-attr]
        live = httpx.get(f"{base}/version", headers=_auth(token), timeout=10).json()
        targets = None
        if soak:
            targets = [reload_to or live["model_path"], live["model_path"]]
        click.echo(
            f"{base}: model {live['model_version']}, {os.cpu_count()} cores, "
            f"load {os.getloadavg()[0]:.2f}, {duration:.0f} s per run"
        )
        results = [
            asyncio.run(run_load(base, n, duration, max_requests, targets, reloads, token))
            for n in counts
        ]
        if server is not None:
            lines = server.log.read_text(errors="replace").splitlines()
            click.echo(f"server log: {len(lines)} lines; last: {lines[-1] if lines else '-'}")
    click.echo(render(results))
    if soak and any(r.error_count or not r.reloads for r in results):
        raise SystemExit(1)


def _auth(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


if __name__ == "__main__":
    main()

"""What Python's cyclic garbage collector costs the service, with and without the tuning the app
applies after start-up (router.http.app.tune_collector: gc.freeze() of the start-up heap, the
young generation collected every 50,000 objects instead of 700).

Each variant runs in its own process (the tuning is once per process): the real app on the
shipped bundle in process (Starlette's TestClient), a warm-up, then agent traffic (bare turns
and 1,000-message histories, the call log on) while gc.callbacks times every collection. Pauses
are CPU work on the event loop, so they show with little noise even on a busy machine.

    .venv/bin/python benchmarks/gc_pauses.py
    .venv/bin/python benchmarks/gc_pauses.py --requests 2000
"""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import click
import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(REPO))

from benchmarks.agent_traffic import agent_body  # noqa: E402


def measure(young: int | None, requests: int) -> dict[str, object]:
    """In this process: serve `requests` requests and time every collection; `young` None keeps
    Python's collector as it is, else the app's tuning with that young-generation threshold."""
    from fastapi.testclient import TestClient

    from router.http import app as app_module
    from router.settings import Settings

    if young is None:  # the app's lifespan would tune the collector; keep Python's defaults
        app_module._collector_tuned = True
    else:
        app_module.GC_YOUNG_THRESHOLD = young
    pauses: dict[int, list[float]] = {0: [], 1: [], 2: []}
    started: list[float] = []

    def timed(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started.append(time.perf_counter())
        else:
            pauses[info["generation"]].append((time.perf_counter() - started.pop()) * 1000)

    bodies = [agent_body(0), agent_body(1_000)]
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            model_dir=REPO / "models", calllog_url=str(Path(tmp) / "calls.db"), deadline_ms=5000
        )
        with TestClient(app_module.create_app(settings)) as client:
            for body in bodies * 20:  # warm-up: caches, pools, lazy imports
                client.post("/route", content=body, headers={"content-type": "application/json"})
            gc.callbacks.append(timed)
            start = time.perf_counter()
            for i in range(requests):
                r = client.post(
                    "/route", content=bodies[i % 2], headers={"content-type": "application/json"}
                )
                assert r.status_code == 200, r.text
            elapsed = time.perf_counter() - start
            gc.callbacks.remove(timed)
    everything = [p for gen in pauses.values() for p in gen]
    return {
        "variant": "Python defaults" if young is None else f"frozen, young every {young:,}",
        "requests": requests,
        "seconds": elapsed,
        "threshold": gc.get_threshold(),
        "frozen": gc.get_freeze_count(),
        "collections": {g: len(p) for g, p in pauses.items()},
        "full_ms_max": max(pauses[2], default=0.0),
        "full_ms_median": float(np.median(pauses[2])) if pauses[2] else 0.0,
        "pause_ms_per_request": sum(everything) / requests,
        "pause_ms_max": max(everything, default=0.0),
    }


@click.command()
@click.option("--requests", default=1000, show_default=True, help="Per variant, half bare turns.")
@click.option(
    "--young",
    "youngs",
    multiple=True,
    type=int,
    help="Young-generation thresholds to try with the heap frozen. [default: 700, 10000, 50000]",
)
@click.option("--child", hidden=True)
def main(requests: int, youngs: tuple[int, ...], child: str | None) -> None:
    """Run every variant in a child process and print a Markdown table."""
    if child is not None:
        click.echo(json.dumps(measure(None if child == "defaults" else int(child), requests)))
        return
    env = {**os.environ, "ROUTER_ONNX_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    rows = []
    for variant in ("defaults", *map(str, youngs or (700, 10_000, 50_000))):
        out = subprocess.run(
            [sys.executable, __file__, "--requests", str(requests), "--child", variant],
            check=True, capture_output=True, text=True, env=env, cwd=REPO,
        )  # fmt: skip
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    click.echo(
        f"load avg {os.getloadavg()[0]:.2f}, python {sys.version.split()[0]}, {requests} requests "
        "per variant (bare turns and 1,000-message histories, call log on), in process\n"
    )
    click.echo(
        "| collector | young threshold | frozen objects | gen0 / gen1 / full collections | "
        "full collection median ms | max ms | all pauses, ms per request | longest pause ms |"
    )
    click.echo("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        c = r["collections"]
        click.echo(
            f"| {r['variant']} | {r['threshold'][0]} | {r['frozen']:,} | "
            f"{c['0']} / {c['1']} / {c['2']} | {r['full_ms_median']:.2f} | "
            f"{r['full_ms_max']:.2f} | {r['pause_ms_per_request']:.3f} | "
            f"{r['pause_ms_max']:.2f} |"
        )


if __name__ == "__main__":
    main()

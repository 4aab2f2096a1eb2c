"""Speed of `tierwise replay`: calls per second per input, every strategy, shipped bundle.

Reads each input, then replays its sessions (per-turn routing, cache-aware routing through
Router.route, the cache simulation of every strategy, pricing and the headroom bound of long
sessions) and prints a Markdown table. The target: the 236-call session of the shared data
(217 distinct API calls, ae4a77f8) replays in a few seconds.

    .venv/bin/python benchmarks/replay_speed.py                          # the shared sessions
    .venv/bin/python benchmarks/replay_speed.py ~/.claude/projects/<project> --model models/v3

Not a test: numbers depend on the machine and its load, which the output's first line records.
"""

from __future__ import annotations

import os
import platform
import sys
import time
from pathlib import Path

import click

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(REPO))

from eval.replay.costs import Pricer  # noqa: E402
from eval.replay.routing import load_router  # noqa: E402
from eval.replay.sources import load_sessions  # noqa: E402
from eval.replay.strategies import replay_session  # noqa: E402
from router.settings import Settings  # noqa: E402

SHARED = REPO.parent / "shared" / "data" / "agent_sessions"
TARGET_SESSION = "ae4a77f8-aedd-4bc1-888f-c94edc91af04"
TARGET_SECONDS = 5.0


def _row(label: str, sessions: int, calls: int, read_s: float, replay_s: float) -> str:
    rate = calls / replay_s if replay_s > 0 else float("inf")
    return f"| {label} | {sessions} | {calls} | {read_s:.2f} | {replay_s:.2f} | {rate:,.0f} |"


@click.command()
@click.argument("paths", nargs=-1, type=click.Path(exists=True, path_type=Path))
@click.option("--model", "model_dir", type=click.Path(path_type=Path), default=REPO / "models")
def main(paths: tuple[Path, ...], model_dir: Path) -> None:
    inputs = list(paths) or [SHARED / "claude_code" / "transcripts.tar.gz", SHARED / "tau_bench"]
    settings = Settings()
    start = time.perf_counter()
    router = load_router(model_dir, settings)
    load_s = time.perf_counter() - start
    pricer = Pricer(settings)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, load avg {load:.2f}, "
        f"python {platform.python_version()}, bundle {router.version} (loaded in {load_s:.1f} s)"
    )
    print()
    print("| input | sessions | calls | read s | replay s | calls/s |")
    print("|---|---:|---:|---:|---:|---:|")
    target = None
    for path in inputs:
        start = time.perf_counter()
        sessions = load_sessions([path]).sessions
        read_s = time.perf_counter() - start
        start = time.perf_counter()
        for session in sessions:
            one = time.perf_counter()
            replay_session(session, router, pricer)
            if session.session_id == TARGET_SESSION:
                target = (session.n_calls, time.perf_counter() - one)
        replay_s = time.perf_counter() - start
        calls = sum(s.n_calls for s in sessions)
        print(_row(path.name, len(sessions), calls, read_s, replay_s))
    if target is not None:
        calls, seconds = target
        verdict = "pass" if seconds < TARGET_SECONDS else "FAIL"
        print()
        print("| target | calls | measured | target | result |")
        print("|---|---:|---:|---:|---|")
        print(
            f"| {TARGET_SESSION[:8]} (236 in the README count) | {calls} | {seconds:.2f} s "
            f"({calls / seconds:,.0f} calls/s) | < {TARGET_SECONDS:.0f} s | {verdict} |"
        )


if __name__ == "__main__":
    main()

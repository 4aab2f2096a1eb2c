"""Speed of `tierwise replay`: calls per second per input, every strategy, shipped bundle.

Runs the `tierwise replay` command on each input (benchmarks import nothing from eval) and reads
the replay's own clock from its replay.json: per-turn routing, cache-aware routing through
RoutingService.route, the cache simulation of every strategy, pricing and the headroom bound of
long sessions; reading the files and writing the report are outside it, inside the command's
wall time. Prints a Markdown table. The target: the 236-call session of the shared data (217
distinct API calls, ae4a77f8), replayed on its own, in a few seconds.

    .venv/bin/python benchmarks/replay_speed.py                          # the shared sessions
    .venv/bin/python benchmarks/replay_speed.py ~/.claude/projects/<project> --model models/v3

Not a test: numbers depend on the machine and its load, which the output's first line records.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

import click

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data" / "agent_sessions"
TRANSCRIPTS = SHARED / "claude_code" / "transcripts.tar.gz"
TARGET_SESSION = "ae4a77f8-aedd-4bc1-888f-c94edc91af04"
TARGET_SECONDS = 5.0


def tierwise_command() -> str:
    """The `tierwise` script of this interpreter's environment, else the one on PATH."""
    beside = Path(sys.executable).with_name("tierwise")
    found = str(beside) if beside.exists() else shutil.which("tierwise")
    if found is None:
        raise click.ClickException("no `tierwise` command: install the project (scripts/bootstrap)")
    return found


def run_replay(path: Path, model_dir: Path, work: Path) -> tuple[dict[str, Any], float]:
    """replay.json of `tierwise replay path` and the command's wall seconds."""
    out = Path(tempfile.mkdtemp(dir=work))
    cmd = [tierwise_command(), "replay", str(path), "--out", str(out), "--model", str(model_dir)]
    start = time.perf_counter()
    done = subprocess.run([*cmd, "--no-progress"], capture_output=True, text=True)
    wall_s = time.perf_counter() - start
    if done.returncode != 0:
        raise click.ClickException(f"{' '.join(cmd)} failed:\n{done.stderr or done.stdout}")
    report: dict[str, Any] = json.loads((out / "replay.json").read_text())
    return report, wall_s


def target_file(work: Path) -> Path | None:
    """The target session's own transcript (no subagents), taken out of the shared archive."""
    if not TRANSCRIPTS.is_file():
        return None
    with tarfile.open(TRANSCRIPTS) as archive:
        member = archive.getmember(f"./{TARGET_SESSION}.jsonl")
        archive.extract(member, work / "target", filter="data")
    return work / "target" / f"{TARGET_SESSION}.jsonl"


@click.command()
@click.argument("paths", nargs=-1, type=click.Path(exists=True, path_type=Path))
@click.option("--model", "model_dir", type=click.Path(path_type=Path), default=REPO / "models")
def main(paths: tuple[Path, ...], model_dir: Path) -> None:
    inputs = list(paths) or [TRANSCRIPTS, SHARED / "tau_bench"]
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    with tempfile.TemporaryDirectory(prefix="replay-speed-") as tmp:
        work = Path(tmp)
        rows = []
        for path in inputs:
            report, wall_s = run_replay(path, model_dir, work)
            speed = report["speed"]
            rows.append(
                f"| {path.name} | {len(report['sessions'])} | {speed['calls']} | {wall_s:.2f} "
                f"| {speed['seconds']:.2f} | {speed['calls_per_s']:,.0f} |"
            )
        print(
            f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, load avg {load:.2f}, "
            f"python {platform.python_version()}, bundle {report['bundle']}"
        )
        print()
        print("| input | sessions | calls | command s | replay s | calls/s |")
        print("|---|---:|---:|---:|---:|---:|")
        print("\n".join(rows))
        shared = any(p.resolve() == TRANSCRIPTS.resolve() for p in inputs)
        target = target_file(work) if shared else None
        if target is not None:
            speed = run_replay(target, model_dir, work)[0]["speed"]
            calls, seconds = speed["calls"], speed["seconds"]
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

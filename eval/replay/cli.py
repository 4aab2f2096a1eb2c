"""`tierwise replay PATH... [--out DIR]`: what tierwise would have cost on real agent sessions.

The command only parses flags, builds ReplayConfig, calls replay() and prints a summary.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import click

from eval.cli import report_folder
from eval.replay.replay import ReplayConfig, replay
from eval.replay.strategies import LABELS
from eval.replay.tables import money
from eval.replay.verdict import verdict
from router.errors import RouterError


@click.command("replay")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@report_folder(Path("reports/replay"), "Folder for replay.html, replay.md and replay.json.")
@click.option(
    "--model",
    "model_dir",
    type=click.Path(path_type=Path),
    help="Routing bundle (a bundle folder, or one with a DEFAULT file). Default: "
    "ROUTER_MODEL_DIR, else the shipped models/.",
)
@click.option(
    "--tools",
    "tools_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Tool schemas (JSON list) sent with OpenAI-format trajectories. Default: the one "
    "*tools.json next to them.",
)
@click.option(
    "--ttl",
    type=click.Choice(["auto", "5m", "1h"]),
    default="auto",
    show_default=True,
    help="Prompt-cache TTL: auto reads each session's recorded cache writes.",
)
@click.option("--progress/--no-progress", default=True, help="Progress bar on stderr.")
@click.option("-v", "--verbose", is_flag=True, help="Log skipped lines and decisions.")
def replay_command(verbose: bool, **options: Any) -> None:
    """Replay Claude Code transcripts (~/.claude/projects/<project>), tierwise call-log
    exports or OpenAI-format trajectories through the router, and price every strategy with
    Claude's prompt cache. Local files only."""
    logging.basicConfig(level=logging.INFO if verbose else logging.ERROR, format="%(message)s")
    try:
        cfg = ReplayConfig(**options)  # the other options are named as ReplayConfig's fields
        result = replay(cfg)
    except RouterError as exc:
        raise click.ClickException(str(exc)) from exc
    for line in verdict(result):
        click.echo(line)
    for group in result.groups:
        click.echo(f"\n{group.title}: {group.sessions} sessions, {group.calls} calls")
        for s in group.strategies.values():
            click.echo(f"  {LABELS[s.name]:<32} {money(s.usd):>10}  switches {s.switches}")
    skipped = len(result.loaded.skipped)
    click.echo(
        f"\n{result.calls} calls replayed at {result.calls_per_s:,.0f} calls/s"
        + (f"; {skipped} files or lines skipped (see replay.json)" if skipped else "")
    )
    click.echo(f"report: {options['out'] / 'replay.html'}")

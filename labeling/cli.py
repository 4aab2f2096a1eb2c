"""`tierwise label` (also `router-label label`).

Commands only parse flags, build the config, call a plain function and print a summary.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import click

from router.core.tiers import TIER_ORDER, Tier
from router.errors import RouterError

FILE = click.Path(dir_okay=False, path_type=Path)
FOLDER = click.Path(file_okay=False, path_type=Path)


@click.command()
@click.option(
    "--input",
    "input_path",
    type=FILE,
    help="JSONL of logged turns: labeled-log or call-log export, with or without 'answers'.",
)
@click.option(
    "--arena-hard",
    "arena_dir",
    type=FOLDER,
    help="The arena_hard folder (question.jsonl + model_answer/claude-3-*.jsonl).",
)
@click.option("--out", type=FILE, required=True, help="Labeled JSONL.")
@click.option(
    "--failures",
    type=FILE,
    help="Default: <out>.failures.jsonl.",
)
@click.option(
    "--state-dir",
    type=FOLDER,
    help="Batch ids and paid results, for resuming. Default: <out>.work/.",
)
@click.option(
    "--judge",
    "judges",
    multiple=True,
    help="Judge model id (repeatable). Default: the sonnet and opus models of tiers.toml.",
)
@click.option(
    "--tier",
    "tiers",
    type=click.Choice([t.value for t in TIER_ORDER]),
    multiple=True,
    help="Tiers to answer and judge (repeatable). Default: all.",
)
@click.option("--limit", type=click.IntRange(min=1), help="Label only the first N turns.")
@click.option(
    "--live", is_flag=True, help="Messages API instead of batches (full price; for a few turns)."
)
@click.option(
    "--regenerate-answers",
    is_flag=True,
    help="Ignore answers in the input; generate every tier's answer with tiers.toml's models.",
)
@click.option("--answer-max-tokens", type=click.IntRange(min=1), default=4096, show_default=True)
@click.option(
    "--poll-interval",
    type=click.FloatRange(min=0),
    default=30.0,
    show_default=True,
    help="First wait between batch polls (s); doubles up to 600.",
)
@click.option(
    "--max-wait",
    type=click.FloatRange(min=0),
    help="Stop waiting after this many seconds (batches keep running; re-run to resume).",
)
@click.option("--yes", "-y", is_flag=True, help="Do not ask before sending.")
@click.option("--dry-run", is_flag=True, help="Only print the cost estimate.")
@click.option("--no-progress", is_flag=True, help="No progress bars.")
@click.option("--cancel", is_flag=True, help="Cancel the pending batches of this --out and exit.")
def label(
    input_path: Path | None,
    arena_dir: Path | None,
    out: Path,
    failures: Path | None,
    state_dir: Path | None,
    judges: tuple[str, ...],
    tiers: tuple[str, ...],
    limit: int | None,
    live: bool,
    regenerate_answers: bool,
    answer_max_tokens: int,
    poll_interval: float,
    max_wait: float | None,
    yes: bool,
    dry_run: bool,
    no_progress: bool,
    cancel: bool,
) -> None:
    """Generate missing tier answers, grade every tier's answer with each judge, and write
    labeled logs. ANTHROPIC_API_KEY (and optionally ANTHROPIC_BASE_URL) configure the API."""
    from labeling.batches import BatchLane, BatchPendingError, PollConfig
    from labeling.judge import default_judges
    from labeling.label import Estimate, LabelConfig, Labeler
    from labeling.sources import read_arena_hard, read_jsonl_turns
    from router.settings import get_settings

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if (input_path is None) == (arena_dir is None):
        raise click.UsageError("give exactly one of --input FILE or --arena-hard DIR")
    try:
        settings = get_settings()
        if arena_dir is not None:
            turns, bad = read_arena_hard(arena_dir, limit)
        else:
            assert input_path is not None
            turns, bad = read_jsonl_turns(input_path)
            turns = turns[:limit] if limit else turns
        cfg = LabelConfig(
            out=out,
            failures=failures,
            state_dir=state_dir,
            judges=judges or default_judges(settings),
            tiers=tuple(Tier(t) for t in tiers) or TIER_ORDER,
            lane="live" if live else "batch",
            answer_max_tokens=answer_max_tokens,
            use_given_answers=not regenerate_answers,
            poll=PollConfig(interval_s=poll_interval, max_wait_s=max_wait),
            progress=not no_progress,
        )
        click.echo(
            f"{len(turns)} turns read, {len(bad)} unusable input lines; judges: {', '.join(cfg.judges)}"
        )
        if dry_run:
            click.echo(Labeler(cfg, settings).estimate(turns).render())
            return

        def confirm(estimate: Estimate) -> bool:
            click.echo(estimate.render(), err=True)
            return yes or click.confirm("Send these requests?", default=False, err=True)

        api_key = os.environ.get("ANTHROPIC_API_KEY")
        if not api_key:
            raise click.ClickException("ANTHROPIC_API_KEY is not set")
        import anthropic

        base_url = os.environ.get("ANTHROPIC_BASE_URL") or None
        with anthropic.Anthropic(api_key=api_key, base_url=base_url) as client:
            if cancel:
                canceled = BatchLane(client, cfg.work_dir / "batches.json").cancel_pending()
                click.echo(f"cancel requested for batches: {canceled or 'none pending'}")
                click.echo("run the same command again to collect what they finished")
                return
            result = Labeler(cfg, settings, client).run(turns, confirm, input_failures=bad)
    except BatchPendingError as exc:
        raise click.ClickException(str(exc)) from exc
    except RouterError as exc:
        raise click.ClickException(str(exc)) from exc
    if result is None:
        raise click.ClickException("aborted: nothing was sent")
    click.echo(
        f"labeled {result.labeled} turns into {cfg.out} ({result.skipped} already there); "
        f"{result.failed_turns} turns failed -> {cfg.failures_path}; "
        f"{result.reused} results reused from earlier runs"
    )
    click.echo(result.ledger.render("Actual cost of this run (from API usage):"))


@click.group()
def main() -> None:
    """router-label: answer and judge logged turns with Claude into labeled logs."""


main.add_command(label)

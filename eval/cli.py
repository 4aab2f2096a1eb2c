"""`tierwise label` (and, from eval's other commands, `tierwise eval`).

Commands only parse flags, build the config, call a plain function and print a summary.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import click

from router.core.policy import DEFAULT_POLICY, POLICIES
from router.core.tiers import TIER_ORDER, Tier
from router.errors import RouterError


@click.command()
@click.option(
    "--input",
    "input_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="JSONL of logged turns: labeled-log or call-log export, with or without 'answers'.",
)
@click.option(
    "--arena-hard",
    "arena_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="The arena_hard folder (question.jsonl + model_answer/claude-3-*.jsonl).",
)
@click.option(
    "--out", type=click.Path(dir_okay=False, path_type=Path), required=True, help="Labeled JSONL."
)
@click.option(
    "--failures",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Default: <out>.failures.jsonl.",
)
@click.option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
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
    from eval.batches import BatchLane, BatchPendingError, PollConfig
    from eval.judge import default_judges
    from eval.label import Estimate, LabelConfig, Labeler
    from eval.sources import read_arena_hard, read_jsonl_turns
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


@click.command("eval")
@click.option(
    "--model",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    required=True,
    help="Bundle folder (models/<version>) or a folder of bundles with a DEFAULT file.",
)
@click.option(
    "--data",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    multiple=True,
    required=True,
    help="Held-out labeled-log JSONL (repeatable).",
)
@click.option(
    "--train-data",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    multiple=True,
    help="Training labeled logs (repeatable): drops eval turns seen in training, fits kNN.",
)
@click.option(
    "--judge-scores",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    multiple=True,
    help="Output of `tierwise label` (repeatable): its per-tier scores replace the eval set's by id.",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("reports"),
    show_default=True,
    help="Report folder; files go to OUT/<bundle version>/.",
)
@click.option("--threshold", type=click.FloatRange(0, 1), help="Default: the bundle's own.")
@click.option(
    "--adequacy-threshold",
    type=click.FloatRange(0, 1),
    help="Score counted as adequate when a record does not say. Default: the manifest's, else 0.5.",
)
@click.option("--output-tokens", type=click.IntRange(min=0), default=500, show_default=True)
@click.option(
    "--policy",
    type=click.Choice(sorted(POLICIES)),
    default=DEFAULT_POLICY,
    show_default=True,
    help="Registered routing policy to replay on the eval turns (router.core.policy).",
)
@click.option("--knn-neighbors", type=click.IntRange(min=1), default=25, show_default=True)
@click.option(
    "--bootstrap",
    type=click.IntRange(min=0),
    default=200,
    show_default=True,
    help="Resamples for APGR intervals (0: none).",
)
@click.option(
    "--cache-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Embedding cache for the kNN baseline. Default: training's ($TIERWISE_CACHE).",
)
@click.option("--no-cache", is_flag=True, help="Embed training turns without the cache.")
@click.option(
    "--no-track", is_flag=True, help="Skip MLflow (otherwise $MLFLOW_TRACKING_URI or mlruns.db)."
)
@click.option("--experiment", default="tierwise-eval", show_default=True)
def evaluate(
    model: Path,
    data: tuple[Path, ...],
    train_data: tuple[Path, ...],
    judge_scores: tuple[Path, ...],
    out: Path,
    threshold: float | None,
    adequacy_threshold: float | None,
    output_tokens: int,
    policy: str,
    knn_neighbors: int,
    bootstrap: int,
    cache_dir: Path | None,
    no_cache: bool,
    no_track: bool,
    experiment: str,
) -> None:
    """Score a bundle on held-out labeled turns against baselines and the oracle; write an HTML
    report with JSON and Markdown summaries, and log them to MLflow."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    from eval.evaluation import EvalConfig
    from eval.evaluation import evaluate as run_evaluation
    from eval.summary import CURVE_HEAD, curve_rows, verdict, warnings

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    from training.embed_cache import DEFAULT_CACHE_DIR

    try:
        cfg = EvalConfig(
            model=model,
            data=data,
            train_data=train_data,
            judge_scores=judge_scores,
            out=out,
            threshold=threshold,
            adequacy_threshold=adequacy_threshold,
            output_tokens=output_tokens,
            policy=policy,
            knn_neighbors=knn_neighbors,
            bootstrap=bootstrap,
            track=not no_track,
            experiment=experiment,
            cache_dir=None if no_cache else (cache_dir or DEFAULT_CACHE_DIR),
        )
        result = run_evaluation(cfg)
    except RouterError as exc:
        raise click.ClickException(str(exc)) from exc
    d = result.dataset
    click.echo(
        f"bundle {result.version}: {d['n_eval']} eval turns ({d['overlap_removed']} dropped as "
        f"seen in training, {d['bad_lines']} bad lines)"
    )
    r = result.metrics.routing
    if r is not None:
        click.echo(verdict(r, result.metrics.apgr_intervals))
        widths = [28, 8, 10, 10, 8]
        for row in [CURVE_HEAD, *curve_rows(r)]:
            click.echo("  " + "".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))
    for warning in warnings(result.metrics, result.context):
        click.echo(f"warning: {warning}", err=True)
    click.echo(
        f"report: {result.files.html}\nsummary: {result.files.json}, {result.files.markdown}"
    )
    if result.run_id:
        click.echo(f"MLflow run {result.run_id} at {result.tracking_uri}")


@click.group()
def main() -> None:
    """router-eval: label logged turns with Claude judges and evaluate router bundles."""


main.add_command(label)
main.add_command(evaluate)

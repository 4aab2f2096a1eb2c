"""`tierwise eval` (also `router-eval eval`).

Commands only parse flags, build the config, call a plain function and print a summary.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from router.core.policy import DEFAULT_POLICY, POLICIES
from router.errors import RouterError

F = TypeVar("F", bound=Callable[..., Any])


def report_folder(default: Path, help: str) -> Callable[[F], F]:
    """The --out option of a command that writes a report (tierwise eval, tierwise replay)."""
    folder = click.Path(file_okay=False, path_type=Path)
    return click.option("--out", type=folder, default=default, show_default=True, help=help)


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
@report_folder(Path("reports"), "Report folder; files go to OUT/<bundle version>/.")
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
    from training.data.embed_cache import DEFAULT_CACHE_DIR

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
    """router-eval: evaluate router bundles on held-out labeled turns."""


main.add_command(evaluate)

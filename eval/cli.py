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

from router.core.policy import POLICIES
from router.errors import RouterError

F = TypeVar("F", bound=Callable[..., Any])
# The peer names (eval.peers.PEERS), listed here so --help needs no sklearn import.
PEER_CHOICES = ("knn", "mlp", "mf", "irt", "task_prior")


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
    help="Training labeled logs (repeatable): drops eval turns seen in training, fits the peers.",
)
@click.option(
    "--judge-scores",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    multiple=True,
    help="Output of `tierwise label` (repeatable): its per-tier scores replace the eval set's by id.",
)
@report_folder(Path("reports"), "Report folder; files go to OUT/<bundle version>/.")
@click.option(
    "--threshold",
    "--knob",
    type=click.FloatRange(min=0),
    help="The policy's knob the router is shown at (threshold policy: a threshold; utility: "
    "failed_turn_usd). Default: the bundle's own.",
)
@click.option(
    "--adequacy-threshold",
    type=click.FloatRange(0, 1),
    help="Score counted as adequate when a record does not say. Default: the manifest's, else 0.5.",
)
@click.option(
    "--output-tokens",
    type=click.IntRange(min=0),
    default=500,
    show_default=True,
    help="Answer tokens priced where a label records no answer length (and the policy's "
    "expectation when the training logs record none).",
)
@click.option(
    "--policy",
    type=click.Choice(sorted(POLICIES)),
    default=None,
    help="Registered routing policy every method is routed with (router.core.policy). "
    "Default: the bundle's own.",
)
@click.option(
    "--peer",
    "peers",
    type=click.Choice(PEER_CHOICES),
    multiple=True,
    help="Peer router to compare with (repeatable). Default: all of "
    + ", ".join(PEER_CHOICES)
    + ".",
)
@click.option("--no-peers", is_flag=True, help="Compare with baselines only (faster).")
@click.option(
    "--bootstrap",
    type=click.IntRange(min=0),
    default=500,
    show_default=True,
    help="Paired bootstrap resamples for every interval (0: none).",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Peers' inner CV, bootstrap.")
@click.option(
    "--cache-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Embedding cache for the training turns. Default: training's ($TIERWISE_CACHE).",
)
@click.option("--no-cache", is_flag=True, help="Embed training turns without the cache.")
@click.option("--no-progress", is_flag=True, help="Hide progress bars.")
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
    policy: str | None,
    peers: tuple[str, ...],
    no_peers: bool,
    bootstrap: int,
    seed: int,
    cache_dir: Path | None,
    no_cache: bool,
    no_progress: bool,
    no_track: bool,
    experiment: str,
) -> None:
    """Score a bundle on held-out labeled turns against peer routers (fitted on --train-data),
    baselines and the oracle; write an HTML report with JSON and Markdown summaries, and log them
    to MLflow."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    from eval.evaluation import EvalConfig
    from eval.evaluation import evaluate as run_evaluation
    from eval.summary import warnings

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    from training.data.embed_cache import DEFAULT_CACHE_DIR

    fields: dict[str, Any] = {
        "model": model,
        "data": data,
        "train_data": train_data,
        "judge_scores": judge_scores,
        "out": out,
        "threshold": threshold,
        "adequacy_threshold": adequacy_threshold,
        "output_tokens": output_tokens,
        "policy": policy,
        "bootstrap": bootstrap,
        "seed": seed,
        "progress": not no_progress,
        "track": not no_track,
        "experiment": experiment,
        "cache_dir": None if no_cache else (cache_dir or DEFAULT_CACHE_DIR),
    }
    if no_peers or peers:
        fields["peers"] = () if no_peers else peers
    try:
        result = run_evaluation(EvalConfig(**fields))
    except RouterError as exc:
        raise click.ClickException(str(exc)) from exc
    d = result.dataset
    click.echo(
        f"bundle {result.version}: {d['n_eval']} eval turns ({d['overlap_removed']} dropped as "
        f"seen in training, {d['bad_lines']} bad lines)"
    )
    echo_comparison(result.metrics)
    for warning in warnings(result.metrics, result.context):
        click.echo(f"warning: {warning}", err=True)
    click.echo(
        f"report: {result.files.html}\nsummary: {result.files.json}, {result.files.markdown}"
    )
    if result.run_id:
        click.echo(f"MLflow run {result.run_id} at {result.tracking_uri}")


def echo_comparison(metrics: Any, echo: Callable[[str], None] = click.echo) -> None:
    """The verdict and the pooled router-vs-peers table, as the terminal shows them."""
    from eval.summary import subset_verdicts, verdict
    from eval.tables import (
        category_summary_head,
        category_summary_rows,
        comparison_head,
        comparison_rows,
    )

    r = metrics.routing
    if r is None:
        echo("no routing metrics: no turn is labeled for two or more tiers")
        return
    echo(verdict(r))
    for line in subset_verdicts(r):
        echo(f"  {line}")
    pooled = r.comparison[0]
    for head, rows in (
        (comparison_head(pooled, r.quality_share), comparison_rows(pooled)),
        (category_summary_head(), category_summary_rows(r)),
    ):
        widths = [max(len(str(x)) for x in col) + 2 for col in zip(head, *rows, strict=True)]
        for row in [head, *rows]:
            echo("  " + "".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)))


@click.group()
def main() -> None:
    """router-eval: evaluate router bundles on held-out labeled turns."""


main.add_command(evaluate)

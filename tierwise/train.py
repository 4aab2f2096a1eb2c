"""`tierwise train`: train a bundle (training.train), then compare it with every peer router on its
own held-out split (eval.evaluation: the split training recorded in manifest.training.heldout_ids,
peers fitted on the rest of the same logs) and write its model card (eval.model_card). Training
never imports eval, so the two meet here, in the CLI layer."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from router.errors import RouterError
from training.cli import print_summary, train_config
from training.cli import train_options as _train_options

if TYPE_CHECKING:
    from training.config import TrainConfig
    from training.export import BundleEmbedder
    from training.train import TrainResult


# training.cli's decorator, typed here (mypy does not follow training/).
train_options: Callable[[Callable[..., None]], Callable[..., None]] = _train_options


@dataclass(frozen=True)
class CompareOptions:
    # The report folder: REPORTS/<version>/report.html (+ summary.json, summary.md).
    reports: Path = Path("reports")
    # False: baselines only (no peer is fitted), much faster.
    peers: bool = True
    # Paired bootstrap resamples (issue 8: 500).
    bootstrap: int = 500
    # A `tierwise cv` Markdown report (cv.md) of the same logs: the model card carries it as
    # the release numbers (one held-out split scatters too much to decide on).
    cv_report: Path | None = None


@dataclass(frozen=True)
class TrainedAndCompared:
    trained: TrainResult
    evaluation: Any  # eval.evaluation.EvalResult
    card: Path


def train_and_compare(
    cfg: TrainConfig,
    options: CompareOptions = CompareOptions(),
    bundle_embedder: BundleEmbedder | None = None,
) -> TrainedAndCompared:
    """Train, evaluate the bundle on its held-out split against the peers, write the card.
    The fakes tests pass for training also serve the evaluation when the bundle has no
    embedder file of its own."""
    from eval.evaluation import EvalConfig, evaluate
    from eval.model_card import write_model_card
    from training.train import train

    trained = train(cfg, bundle_embedder)
    fields: dict[str, Any] = {
        "model": trained.bundle_dir,
        # The logs training read: minus its recorded held-out ids they are the peers' training
        # turns, and those held-out ids are exactly what is evaluated.
        "data": cfg.logs,
        "train_data": cfg.logs,
        "out": options.reports,
        "adequacy_threshold": cfg.adequacy_threshold,
        "output_tokens": cfg.output_tokens,
        "bootstrap": options.bootstrap,
        "seed": cfg.seed,
        "cache_dir": cfg.cache_dir,
        "progress": cfg.progress,
        "track": cfg.track,
    }
    if not options.peers:
        fields["peers"] = ()
    eval_cfg = EvalConfig(**fields)
    served = None
    if bundle_embedder is not None:
        manifest = trained.manifest
        if not (trained.bundle_dir / manifest.embedder.file).is_file():
            served = bundle_embedder.load(trained.bundle_dir, manifest.embedder)
    evaluation = evaluate(eval_cfg, embedder=served)
    cv = options.cv_report.read_text(encoding="utf-8") if options.cv_report else None
    card = write_model_card(trained.bundle_dir, evaluation, cv)
    return TrainedAndCompared(trained, evaluation, card)


@click.command("train")
@train_options
@click.option(
    "--reports",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("reports"),
    show_default=True,
    help="Where the held-out comparison report goes: REPORTS/<version>/.",
)
@click.option(
    "--no-peers",
    is_flag=True,
    help="Compare with the baselines only (no peer router is fitted): faster.",
)
@click.option(
    "--bootstrap",
    type=click.IntRange(min=0),
    default=500,
    show_default=True,
    help="Paired bootstrap resamples of the comparison (0: no intervals).",
)
@click.option(
    "--cv-report",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="A `tierwise cv` report (cv.md) of the same logs, put in the model card as the "
    "repeated-CV comparison.",
)
def train_command(
    reports: Path, no_peers: bool, bootstrap: int, cv_report: Path | None, **options: Any
) -> None:
    """Train a router bundle from labeled logs into <out>/<version>/, then compare it on its own
    held-out split with the peer routers (kNN, MLP, matrix factorisation, IRT, task prior) and
    the baselines, routed by the same policy; write the report and the bundle's model card."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    from eval.cli import echo_comparison

    cfg = train_config(**options)
    compare = CompareOptions(reports, not no_peers, bootstrap, cv_report)
    try:
        done = train_and_compare(cfg, compare)
    except RouterError as exc:
        raise click.ClickException(str(exc)) from exc
    print_summary(done.trained)
    click.echo(f"held-out comparison ({done.evaluation.dataset['n_eval']} turns):")
    echo_comparison(done.evaluation.metrics)
    click.echo(f"report: {done.evaluation.files.html}\nmodel card: {done.card}")

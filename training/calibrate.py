"""`tierwise calibrate`: re-fit (or add) a tier's stage 2 of a stacked bundle from a few hundred
labeled calls, keeping everything before it (embedder, P(task), stage 1, answer lengths).

Use it when a tier's model changes (a new Haiku) or to correct a tier's calibration on your own
traffic. Only the new labels are used for that tier's logistic (C by CV log loss), and the
coverage guard is rebuilt from them: a task where the new logs have fewer than min_labels
labels of the tier keeps the tier uncertain there (its neighbours' mean). The result is a new
bundle written like `tierwise train` writes one (ONNX checked against the numpy model, parity
probe, load_bundle check); its held-out curve and default knob are the original training's,
and manifest.training.calibration says so.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import click
import numpy as np

from router.core.bundle import (
    load_bundle,
    read_manifest,
    resolve_bundle_dir,
    sha256_file,
    write_bundle,
)
from router.core.embedder import Embedder
from router.core.tiers import TIER_ORDER, Tier
from router.errors import RouterError
from training.data.embed_cache import DEFAULT_CACHE_DIR, EmbedCache, served_cache_name
from training.data.logs import load_labeled
from training.data.parallel_embed import ParallelEmbedder
from training.export import CLASSIFIER_FILE, move_into_place, staging_dir
from training.fit import TurnArrays, build_arrays
from training.stack import StackConfig, fit_stage2_tier
from training.stack_heads import write_stack_classifier
from training.stack_model import StackModel, from_onnx

log = logging.getLogger(__name__)


class CalibrationError(RouterError):
    """The bundle or the logs cannot be calibrated (not a stacked bundle, no labels)."""


@dataclass(frozen=True)
class TierCalibration:
    tier: Tier
    n: int
    c: float | None  # None: too few labels of one kind, the tier stays uncertain everywhere
    covered_tasks: list[str]


@dataclass(frozen=True)
class CalibrateResult:
    bundle_dir: Path
    version: str
    tiers: list[TierCalibration]


def task_index(model: StackModel, turns_tasks: Sequence[str], task_probs: np.ndarray) -> np.ndarray:
    """Each turn's task among the model's: its category/source when the model knows it, else
    the most likely by P(task)."""
    known = {t: i for i, t in enumerate(model.tasks)}
    guess = task_probs.argmax(axis=1)
    return np.asarray([known.get(t, int(g)) for t, g in zip(turns_tasks, guess, strict=True)])


def recalibrate(
    model: StackModel,
    data: TurnArrays,
    tiers: Sequence[Tier],
    min_labels: int,
    seed: int = 0,
) -> tuple[StackModel, list[TierCalibration]]:
    """`model` with each of `tiers`' stage 2 and guard column fitted on `data`'s labels."""
    x = data.features.astype(np.float64)
    design, task_probs = model.design(x)
    tasks = task_index(model, data.tasks.tolist(), task_probs)
    cfg = StackConfig(seed=seed, min_labels=min_labels)
    report = []
    for tier in tiers:
        j = tier.rank
        rows = np.flatnonzero(data.labeled[:, j])
        if len(rows) == 0:
            raise CalibrationError(f"the logs have no {tier.value} labels to calibrate it with")
        y = data.adequate[rows, j].astype(np.float64)
        weights, bias, _, c, _ = fit_stage2_tier(design[rows], y, cfg)
        counts = np.bincount(tasks[rows], minlength=model.n_tasks)
        guard = (counts < min_labels).astype(np.float64)
        if c is None:
            guard[:] = 1.0
        model = model.with_stage2(j, weights, bias, guard)
        covered = [model.tasks[i] if model.tasks else "all" for i in np.flatnonzero(guard == 0)]
        report.append(TierCalibration(tier, len(rows), c, covered))
        log.info("%s: %d labels, C=%s, covered tasks %s", tier.value, len(rows), c, covered)
    return model, report


def calibrate(
    model_dir: Path,
    logs: Sequence[Path],
    out_dir: Path,
    version: str,
    tiers: Sequence[Tier] = (),
    min_labels: int = 30,
    cache_dir: Path = DEFAULT_CACHE_DIR,
    adequacy_threshold: float | None = None,
    workers: int = 2,
    embedder: Embedder | None = None,
) -> CalibrateResult:
    """A new bundle out_dir/<version> from the one in model_dir, with `tiers` (default: every
    tier labeled in the logs) re-fitted on the logs' labels. `embedder` replaces the bundle's
    own (tests: a fake; the bundle then has no embedder file to copy)."""
    source = resolve_bundle_dir(model_dir)
    manifest = read_manifest(source)
    if manifest.classifier.tokens_output is None or not manifest.hand_features:
        raise CalibrationError(
            f"bundle {manifest.version!r} has per-tier heads ({manifest.classifier.head}); "
            "calibrate needs a stacked bundle (tierwise train --head stack4)"
        )
    bundle = load_bundle(source, embedder=embedder)
    model = from_onnx(source / manifest.classifier.file)
    turns = load_labeled(list(logs)).turns
    spec = manifest.embedder
    own = (source / spec.file).is_file()
    name = served_cache_name(spec, sha256_file(source / spec.file) if own else None)
    cache = EmbedCache(
        cache_dir / "embeddings", ParallelEmbedder(bundle.embedder, workers), name, progress=False
    )
    adequacy = adequacy_threshold
    if adequacy is None:
        adequacy = float(manifest.training.get("adequacy_threshold", 0.5))
    data = build_arrays(turns, cache.embed_turns(turns), adequacy, hand=True)
    chosen = list(tiers) or [t for t in TIER_ORDER if data.labeled[:, t.rank].any()]
    model, report = recalibrate(model, data, chosen, min_labels)

    staging = staging_dir(out_dir, version)
    try:
        for file in (spec.file, spec.tokenizer):
            if (source / file).is_file():
                shutil.copyfile(source / file, staging / file)
        x_check = data.features[:512]
        classifier = write_stack_classifier(
            model, manifest.classifier.head, staging, x_check, spec.dim
        )
        assert classifier.file == CLASSIFIER_FILE
        calibration = {
            "from_version": manifest.version,
            "logs": [Path(p).name for p in logs],
            "n_turns": len(turns),
            "tiers": {
                r.tier.value: {"n": r.n, "c": r.c, "covered_tasks": r.covered_tasks} for r in report
            },
            "note": "curve and default knob are the original training's, not re-measured",
        }
        new = manifest.model_copy(
            update={
                "version": version,
                "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "classifier": classifier,
                "training": {**manifest.training, "calibration": calibration},
            }
        )
        parity = manifest.parity
        write_bundle(
            staging,
            new,
            parity.texts if parity else (),
            parity.atol if parity else 1e-2,
            embedder=bundle.embedder,
        )
        load_bundle(staging, embedder=None if own else bundle.embedder)
        final = move_into_place(staging, out_dir, version)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return CalibrateResult(final, version, report)


@click.command("calibrate")
@click.option(
    "--model", type=click.Path(exists=True, path_type=Path), required=True, help="Stacked bundle."
)
@click.option(
    "--logs",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    multiple=True,
    required=True,
    help="Labeled-log JSONL with the tier's outcomes (repeatable).",
)
@click.option(
    "--tier",
    "tiers",
    type=click.Choice([t.value for t in TIER_ORDER]),
    multiple=True,
    help="Tier to re-fit (repeatable). Default: every tier labeled in the logs.",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("models"),
    show_default=True,
)
@click.option("--version", required=True, help="The new bundle's version (folder name).")
@click.option("--min-labels", type=click.IntRange(min=1), default=30, show_default=True)
@click.option("--cache-dir", type=click.Path(file_okay=False, path_type=Path))
def calibrate_command(
    model: Path,
    logs: tuple[Path, ...],
    tiers: tuple[str, ...],
    out_dir: Path,
    version: str,
    min_labels: int,
    cache_dir: Path | None,
) -> None:
    """Re-fit a tier's calibration (stage 2) of a stacked bundle from labeled calls."""
    try:
        result = calibrate(
            model,
            logs,
            out_dir,
            version,
            [Tier(t) for t in tiers],
            min_labels,
            cache_dir or DEFAULT_CACHE_DIR,
        )
    except RouterError as exc:
        raise click.ClickException(str(exc)) from exc
    for r in result.tiers:
        where = ", ".join(r.covered_tasks) or "no task (uncertain everywhere)"
        click.echo(f"{r.tier.value}: {r.n} labels, C={r.c}; confident on: {where}")
    click.echo(f"bundle {result.version} -> {result.bundle_dir}")

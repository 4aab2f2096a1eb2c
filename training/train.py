"""train(cfg) -> TrainResult: labeled logs -> a validated bundle in cfg.out_dir/<version>/.

Steps: load and validate logs -> export the serving embedder into a staging folder -> embed
every turn with it, each text alone (cached) -> seeded split stratified by task and label
pattern -> heads (stacked: training.stack; per tier: training.fit) -> classifier.onnx (checked
against the model it came from) -> the default operating point (stacked: the utility policy's
knob keeping cfg.quality_target on the training rows' out-of-fold predictions; per tier: the
cheapest held-out threshold reaching it) -> held-out curve and routing through the exported
bundle, priced with router.core.economics -> write_bundle -> load_bundle check -> publish ->
MLflow.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, astuple, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from router.core.bundle import assemble_bundle, load_bundle, sha256_file, write_bundle
from router.core.economics import turn_costs
from router.core.features import HAND_FEATURES
from router.core.heads import HeadScores
from router.core.manifest import (
    DEFAULT_PARITY_ATOL,
    ClassifierSpec,
    CurvePoint,
    EmbedderSpec,
    Manifest,
)
from router.core.policy import Policy, UtilityPolicy, bundle_policy, get_policy, pick_point
from router.core.tiers import TIER_ORDER, Tier, TierSpec
from router.settings import Settings
from training.config import TrainConfig
from training.data.embed_cache import EmbedCache, served_cache_name
from training.data.logs import DataError, LabeledTurn, LoadReport, data_hash, load_labeled
from training.data.parallel_embed import ParallelEmbedder
from training.embedder_export import hide_progress_bars
from training.export import (
    PARITY_ATOL,
    BundleEmbedder,
    CachedEmbedder,
    MiniLMBundleEmbedder,
    move_into_place,
    staging_dir,
    text_key,
    write_classifier,
)
from training.fit import (
    TrainingError,
    TurnArrays,
    build_arrays,
    fit_heads,
    head_metrics,
    predict_proba,
    split_holdout,
)
from training.head_types import HEADS, HeadType
from training.heldout import (
    RoutingOutcome,
    RoutingRows,
    knob_curve,
    routing_report,
    small_data_warning,
    summarise_curve,
)
from training.stack_heads import fit_stacked, write_stack_classifier

log = logging.getLogger(__name__)

# Rows of the held-out features used for the classifier parity check.
PARITY_ROWS = 512


@dataclass(frozen=True)
class TrainResult:
    bundle_dir: Path
    version: str
    manifest: Manifest
    load_report: LoadReport
    # quantization -> router and baselines at the default knob, on fully labeled held-out
    routing: dict[str, list[RoutingOutcome]] = field(default_factory=dict)
    mlflow_run_id: str | None = None
    registered_version: str | None = None
    alias: str | None = None  # the registry alias given to registered_version
    # Said in the log and the CLI summary (e.g. a training set too small to mean anything).
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class Fitted:
    """What a head family hands the rest of the pipeline."""

    classifier: ClassifierSpec
    policy: Policy
    default_knob: float | None  # None: picked on the held-out curve (per-tier heads)
    metrics: dict[str, Any]
    reference_cost_usd: float | None = None  # the utility policy's typical turn


def load_logs(cfg: TrainConfig) -> LoadReport:
    report = load_labeled(list(cfg.logs))
    for path, lineno, why in report.bad_lines:
        log.warning("%s:%d: %s", path, lineno, why)
    if report.bad_lines and cfg.fail_on_bad_lines:
        shown = "; ".join(f"{p}:{n}: {w}" for p, n, w in report.bad_lines[:5])
        raise DataError(f"{len(report.bad_lines)} bad lines and fail_on_bad_lines is set: {shown}")
    return report


def tier_specs() -> dict[Tier, TierSpec]:
    """Each tier's list prices, from router/core/tiers.toml (or ROUTER_ env), as serving has them."""
    return dict(Settings().tiers)


def outcome_dict(o: RoutingOutcome) -> dict[str, Any]:
    d = asdict(o)
    d["tier_mix"] = {
        t.value: round(share, 4) for t, share in zip(TIER_ORDER, o.tier_mix, strict=True)
    }
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in d.items()}


def true_costs(data: TurnArrays, specs: dict[Tier, TierSpec], output_tokens: int) -> NDArray[Any]:
    """(n, k) USD each turn cost on each tier: its recorded answer length where the log has
    one, else `output_tokens`."""
    answers = np.where(np.isnan(data.output_tokens), float(output_tokens), data.output_tokens)
    return turn_costs(data.tokens, answers, specs)


def policy_costs(
    data: TurnArrays, scores: HeadScores, specs: dict[Tier, TierSpec], output_tokens: int
) -> NDArray[Any]:
    """(n, k) USD the policy weighs, as serving prices a plain request: input plus the bundle's
    answer forecast (else `output_tokens`, serving's expected_output_tokens)."""
    answers = scores.output_tokens if scores.output_tokens is not None else float(output_tokens)
    return turn_costs(data.tokens, answers, specs)


def reference_cost(believed: NDArray[np.float64]) -> float:
    """The utility policy's typical turn (manifest.reference_cost_usd), the knob's dollars: the
    mean over the training rows of the dearest tier's expected cost, `believed` (n, k) being
    policy_costs of their out-of-fold predictions."""
    return float(believed.max(axis=1).mean())


def default_point(
    head: HeadType,
    train: TurnArrays,
    oof_probs: NDArray[Any],
    oof_tokens: NDArray[Any],
    specs: dict[Tier, TierSpec],
    cfg: TrainConfig,
) -> tuple[UtilityPolicy, CurvePoint, RoutingRows]:
    """A stacked bundle's policy and default knob: the reference turn and cfg.quality_target
    both on the training rows' out-of-fold predictions, so held-out rows stay untouched
    (`tierwise cv` measures what this keeps on unseen folds). Also the rows it was set on."""
    oof = HeadScores(oof_probs.astype(np.float32), oof_tokens.astype(np.float32))
    believed = policy_costs(train, oof, specs, cfg.output_tokens)
    policy = bundle_policy(head.policy, reference_cost(believed))
    if not isinstance(policy, UtilityPolicy):
        raise TrainingError(f"stacked heads ship the utility policy, not {head.policy!r}")
    rows = RoutingRows.of(
        oof_probs,
        believed,
        np.where(train.labeled, train.scores, np.nan),
        true_costs(train, specs, cfg.output_tokens),
    )
    curve = knob_curve(policy, rows, cfg.curve_points)
    return policy, pick_point(curve, cfg.quality_target), rows


def default_version(cfg: TrainConfig, digest: str) -> str:
    return f"{Path(cfg.logs[0]).stem}-minilm-{cfg.quantization}-{digest[:8]}"


def embed_turns(
    turns: Sequence[LabeledTurn],
    staging: Path,
    spec: EmbedderSpec,
    embedder: Any,
    cfg: TrainConfig,
) -> NDArray[np.float32]:
    """Every turn's routing text through the bundle's own embedder, each text alone (in
    cfg.embed_workers threads), via the embedding cache."""
    file = staging / spec.file
    name = served_cache_name(spec, sha256_file(file) if file.is_file() else None)
    parallel = ParallelEmbedder(embedder, cfg.embed_workers)
    cache = EmbedCache(cfg.cache_dir / "embeddings", parallel, name, progress=cfg.progress)
    texts = [t.turn().text for t in turns]
    # Keyed by text, as CachedEmbedder keys the held-out scoring: a served vector depends on
    # the text alone, so scoring the held-out turns later finds them here.
    return cache.embed_texts([text_key(t) for t in texts], texts)


def train(cfg: TrainConfig, bundle_embedder: BundleEmbedder | None = None) -> TrainResult:
    """Train and publish a bundle. `bundle_embedder` replaces the ONNX MiniLM export (tests:
    a fake); training features come from the embedder it puts in the bundle."""
    report = load_logs(cfg)
    turns: list[LabeledTurn] = report.turns
    digest = data_hash(turns)
    version = cfg.version or default_version(cfg, digest)
    head = HEADS[cfg.heads[0]]
    if not cfg.progress:
        hide_progress_bars()
    bundle_embedder = bundle_embedder or MiniLMBundleEmbedder(
        cfg.cache_dir / "onnx-embedders", cfg.max_length
    )
    specs = tier_specs()
    cfg.out_dir.mkdir(parents=True, exist_ok=True)
    staging = staging_dir(cfg.out_dir, version)
    try:
        spec = bundle_embedder.export(staging, cfg.quantization)
        embeddings = embed_turns(turns, staging, spec, bundle_embedder.load(staging, spec), cfg)
        data = build_arrays(turns, embeddings, cfg.adequacy_threshold, hand=head.stacked)
        train_idx, test_idx = split_holdout(
            data.labeled, data.adequate, cfg.holdout_fraction, cfg.seed, data.tasks.tolist()
        )
        train_data, test_data = data.subset(train_idx), data.subset(test_idx)
        test_turns = [turns[i] for i in test_idx]
        log.info("%d train / %d held-out turns", len(train_idx), len(test_idx))
        n_full = int(test_data.fully_labeled.sum())
        small = small_data_warning(len(turns), n_full, cfg.holdout_fraction)
        if small is not None:
            log.warning("%s", small)
        x_check = test_data.features[:PARITY_ROWS]
        if head.stacked:
            fitted = _fit_stacked(head, train_data, x_check, staging, spec, specs, cfg)
        else:
            fitted = _fit_per_tier(train_data, test_data, x_check, staging, cfg)

        manifest = Manifest.create(
            version,
            spec,
            fitted.classifier,
            policy=fitted.policy.name,
            default_knob=0.0,
            reference_cost_usd=fitted.reference_cost_usd,
            hand_features=list(HAND_FEATURES) if head.stacked else [],
        )
        served: dict[str, HeadScores] = {}
        for quant in dict.fromkeys((cfg.quantization, *cfg.compare_quantizations)):
            served[quant] = _served_scores(
                staging, manifest, spec, quant, cfg, bundle_embedder, test_turns
            )
        heldout = _heldout(fitted, served, test_data, specs, cfg)
        knob = heldout.point.knob
        is_threshold = fitted.policy.knob_name == "threshold"
        metrics = {
            **fitted.metrics,
            **heldout.metrics,
            "n_train": len(train_idx),
            "n_heldout": len(test_idx),
            "n_heldout_routing": int(test_data.fully_labeled.sum()),
            "policy": fitted.policy.name,
            "default_knob": knob,
            "default_threshold": knob if is_threshold else None,
            "quality_target": cfg.quality_target,
            "prices_input_per_mtok": {
                t.value: round(specs[t].input_per_mtok, 4) for t in TIER_ORDER
            },
            "prices_output_per_mtok": {
                t.value: round(specs[t].output_per_mtok, 4) for t in TIER_ORDER
            },
            "output_tokens": cfg.output_tokens,
        }
        manifest = manifest.model_copy(
            update={
                "default_knob": None if is_threshold else knob,
                "default_threshold": knob if is_threshold else None,
                "curve": [CurvePoint(*(_round(v) for v in astuple(c))) for c in heldout.curve],
                "metrics": metrics,
                "training": _training_info(cfg, report, digest, spec, len(train_idx), test_turns),
            }
        )
        manifest = write_bundle(
            staging,
            manifest,
            cfg.parity_texts,
            PARITY_ATOL.get(spec.quantization, DEFAULT_PARITY_ATOL),
            embedder=bundle_embedder.load(staging, spec),
        )
        # Refuse to publish a bundle that will not serve. A bundle without its own embedder
        # file (fakes in tests) is loaded with the injected one, which skips the probe.
        own = (staging / spec.file).is_file()
        load_bundle(staging, embedder=None if own else bundle_embedder.load(staging, spec))
        final = move_into_place(staging, cfg.out_dir, version)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    warnings = (small,) if small is not None else ()
    result = TrainResult(final, version, manifest, report, heldout.routing, warnings=warnings)
    if cfg.track:
        from training.tracking import log_training_run

        run = log_training_run(
            cfg.model_dump(mode="json"),
            metrics,
            final,
            cfg.experiment,
            cfg.registered_model,
            alias=cfg.alias,
        )
        result = replace(
            result,
            mlflow_run_id=run.run_id,
            registered_version=run.model_version,
            alias=cfg.alias,
        )
    return result


def _round(v: float) -> float:
    """Curve values: 4 significant digits for knobs (USD values are small), 4 decimals else."""
    return float(f"{v:.4g}") if abs(v) < 1 else round(v, 4)


def _fit_stacked(
    head: HeadType,
    train: TurnArrays,
    x_check: NDArray[np.float32],
    staging: Path,
    spec: EmbedderSpec,
    specs: dict[Tier, TierSpec],
    cfg: TrainConfig,
) -> Fitted:
    fit = fit_stacked(
        train,
        head,
        spec.dim,
        use_aux=cfg.use_aux,
        min_labels=cfg.min_labels,
        default_output_tokens=cfg.output_tokens,
        seed=cfg.seed,
    )
    # Fit times go to the log, not the manifest: a rebuild must give the same manifest.
    log.info("stack fit seconds: %s", {k: round(v, 2) for k, v in fit.seconds.items()})
    classifier = write_stack_classifier(fit.model, head.name, staging, x_check, spec.dim)
    policy, point, rows = default_point(head, train, fit.oof_probs, fit.oof_tokens, specs, cfg)
    tiers = [t.value for t in TIER_ORDER]
    metrics = {
        "heads": {
            t: {
                "chosen": f"{head.name} stage-2 C={fit.chosen_c[j]}",
                "n_train": int(train.labeled[:, j].sum()),
                "cv_log_loss": fit.cv_log_loss[j],
            }
            for j, t in enumerate(tiers)
        },
        "stack": {
            "tasks": list(fit.model.tasks),
            "label_counts": {
                task: dict(zip(tiers, c, strict=True)) for task, c in fit.label_counts.items()
            },
            "uncertain": {
                task: [t for j, t in enumerate(tiers) if fit.model.guard[i, j] > 0]
                for i, task in enumerate(fit.model.tasks)
            },
            "abilities": dict(zip(tiers, (round(a, 4) for a in fit.abilities), strict=True)),
            "stage1": list(fit.model.stage1),
            "dropped_inputs": classifier.dropped_inputs,
        },
        "train_oof": {
            "n": len(rows.probs),
            "default_point": {"knob": point.knob, "quality": point.quality, "cost": point.cost},
        },
    }
    return Fitted(classifier, policy, point.knob, metrics, policy.reference_usd)


def _fit_per_tier(
    train: TurnArrays,
    test: TurnArrays,
    x_check: NDArray[np.float32],
    staging: Path,
    cfg: TrainConfig,
) -> Fitted:
    heads = fit_heads(train, cfg.heads, cfg.cv_folds, cfg.seed)
    classifier = write_classifier(heads, staging, x_check)
    probs = predict_proba(heads, test.features)
    metrics = {
        "heads": {
            h.tier: {"chosen": h.name, "n_train": h.n_train, "cv_log_loss": h.cv_log_loss}
            for h in heads
        },
        "heldout_heads": head_metrics([h.tier for h in heads], probs, test),
    }
    return Fitted(classifier, get_policy("threshold"), None, metrics)


@dataclass(frozen=True)
class Heldout:
    point: CurvePoint
    curve: list[CurvePoint]
    routing: dict[str, list[RoutingOutcome]]
    metrics: dict[str, Any]


def _heldout(
    fitted: Fitted,
    served: dict[str, HeadScores],
    test: TurnArrays,
    specs: dict[Tier, TierSpec],
    cfg: TrainConfig,
) -> Heldout:
    """The curve, default point and routing of the exported bundle on the held-out turns, per
    embedder precision (the shipped one's curve goes in the manifest)."""
    policy = fitted.policy
    scores = np.where(test.labeled, test.scores, np.nan)
    real = true_costs(test, specs, cfg.output_tokens)
    full = test.fully_labeled
    if not full.any():
        raise DataError("no held-out turn has scores for every tier; routing cannot be evaluated")
    curve: list[CurvePoint] = []
    point: CurvePoint | None = None
    routing: dict[str, list[RoutingOutcome]] = {}
    summaries: dict[str, dict[str, float]] = {}
    for quant, scored in served.items():
        believed = policy_costs(test, scored, specs, cfg.output_tokens)
        rows = RoutingRows.of(scored.quality, believed, scores, real)
        if fitted.default_knob is None:  # per-tier heads: thresholds on the held-out turns
            q_curve = knob_curve(policy, rows, cfg.curve_points, cfg.curve_thresholds)
            knob = (point or pick_point(q_curve, cfg.quality_target)).knob
        else:
            q_curve = knob_curve(policy, rows, cfg.curve_points)
            knob = fitted.default_knob
        chosen = policy.choose(rows.probs, rows.policy_costs, knob, rows.allowed)
        quality, cost = rows.shares(chosen)
        summary = summarise_curve(q_curve, rows)
        summaries[quant] = {
            "apgr": summary.apgr,
            "saving_at_95": summary.saving_at_95,
            "n": summary.n,
            "default_quality_share": quality,
            "default_cost_share": cost,
        }
        sub = np.flatnonzero(full)
        picked = policy.choose(scored.quality[sub], believed[sub], knob)
        routing[quant] = routing_report(
            picked,
            test.scores[sub],
            test.adequate[sub],
            real[sub],
            test.lengths[sub],
            cfg.seed,
        )
        if point is None:  # the shipped precision comes first
            curve, point = q_curve, CurvePoint(knob, quality, cost)
    assert point is not None
    metrics = {
        "routing": {
            key: {o.name: outcome_dict(o) for o in outcomes} for key, outcomes in routing.items()
        },
        "heldout_curve": summaries,
    }
    if fitted.default_knob is not None:
        shipped = next(iter(served.values()))
        metrics["heldout_heads"] = head_metrics(
            [t.value for t in TIER_ORDER], shipped.quality.astype(np.float64), test
        )
    return Heldout(point, curve, routing, metrics)


def _served_scores(
    staging: Path,
    manifest: Manifest,
    spec: EmbedderSpec,
    quant: str,
    cfg: TrainConfig,
    bundle_embedder: BundleEmbedder,
    turns: Sequence[LabeledTurn],
) -> HeadScores:
    """Held-out scores through the exported classifier and a `quant` serving embedder."""
    with tempfile.TemporaryDirectory(prefix=f"embedder-{quant}-") as tmp:
        where, qspec = staging, spec
        if quant != spec.quantization:
            where = Path(tmp)
            qspec = bundle_embedder.export(where, quant)
        served = bundle_embedder.load(where, qspec)
        file = where / qspec.file
        name = served_cache_name(qspec, sha256_file(file) if file.is_file() else None)
        parallel = ParallelEmbedder(served, cfg.embed_workers)
        cache = EmbedCache(cfg.cache_dir / "embeddings", parallel, name, progress=cfg.progress)
        bundle = assemble_bundle(staging, manifest, CachedEmbedder(cache))
        return bundle.predict([t.turn() for t in turns])


def _training_info(
    cfg: TrainConfig,
    report: LoadReport,
    digest: str,
    spec: EmbedderSpec,
    n_train: int,
    heldout: Sequence[LabeledTurn],
) -> dict[str, Any]:
    import skl2onnx
    import sklearn

    return {
        "data_hash": digest,
        # File names only: a path would name folders of the machine that built the bundle;
        # data_hash says exactly which turns were read.
        "logs": [Path(p).name for p in cfg.logs],
        "n_records": len(report.turns),
        "bad_lines": len(report.bad_lines),
        "duplicates": report.duplicates,
        # Training features come from the bundle's own embedder, each text alone.
        "train_embedder": f"{spec.name}:{spec.quantization}",
        "n_train": n_train,
        "n_heldout": len(heldout),
        # Lets eval score exactly the turns training never saw, without re-deriving the split.
        "heldout_ids": sorted(t.id for t in heldout),
        "seed": cfg.seed,
        "holdout_fraction": cfg.holdout_fraction,
        "cv_folds": cfg.cv_folds,
        "heads_considered": list(cfg.heads),
        "adequacy_threshold": cfg.adequacy_threshold,
        "use_aux": cfg.use_aux,
        "min_labels": cfg.min_labels,
        "quality_target": cfg.quality_target,
        "sklearn": sklearn.__version__,
        "skl2onnx": skl2onnx.__version__,
    }

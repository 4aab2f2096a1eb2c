"""train(cfg) -> TrainResult: labeled logs -> a validated bundle in cfg.out_dir/<version>/.

Steps: load and validate logs -> seeded stratified held-out split -> embed (cached) -> per-tier
heads picked by CV -> classifier.onnx (parity vs sklearn) + serving embedder -> held-out routing
metrics through the exported bundle, with the serving policy and turn costs of router.core ->
write_bundle (curve, default threshold, parity probe) -> load_bundle check -> publish -> MLflow.
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
from router.core.embedder import Embedder
from router.core.manifest import DEFAULT_PARITY_ATOL, CurvePoint, EmbedderSpec, Manifest
from router.core.policy import DEFAULT_POLICY, Policy, get_policy, pick_point
from router.core.tiers import TIER_ORDER, Tier, TierSpec
from router.settings import Settings
from training.config import TrainConfig
from training.data.embed_cache import EmbedCache, served_cache_name
from training.data.logs import DataError, LabeledTurn, LoadReport, data_hash, load_labeled
from training.embedder_export import SentenceTransformerEmbedder
from training.export import (
    PARITY_ATOL,
    BundleEmbedder,
    CachedEmbedder,
    MiniLMBundleEmbedder,
    move_into_place,
    staging_dir,
    write_classifier,
)
from training.fit import (
    TurnArrays,
    build_arrays,
    fit_heads,
    head_metrics,
    predict_proba,
    split_holdout,
)
from training.heldout import RoutingOutcome, operating_curve, routing_report

log = logging.getLogger(__name__)

# Rows of the held-out features used for the sklearn-vs-ONNX classifier parity check.
PARITY_ROWS = 512


@dataclass(frozen=True)
class TrainResult:
    bundle_dir: Path
    version: str
    manifest: Manifest
    load_report: LoadReport
    # quantization -> router and baselines at the default threshold, on fully labeled held-out
    routing: dict[str, list[RoutingOutcome]] = field(default_factory=dict)
    mlflow_run_id: str | None = None
    registered_version: str | None = None


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


def evaluate(
    probs: NDArray[np.floating],
    data: TurnArrays,
    specs: dict[Tier, TierSpec],
    cfg: TrainConfig,
    policy: Policy,
    threshold: float | None = None,
) -> tuple[list[CurvePoint], CurvePoint, list[RoutingOutcome]]:
    """`policy`'s curve, chosen operating point and router+baselines, on the fully labeled rows
    only (a partially labeled row has no score for some tier the router might pick). Turns are
    priced with router.core.economics.turn_costs: input tokens plus cfg.output_tokens."""
    full = data.fully_labeled
    if not full.any():
        raise DataError("no held-out turn has scores for every tier; routing cannot be evaluated")
    p, d = probs[full], data.subset(np.flatnonzero(full))
    costs = turn_costs(d.tokens, cfg.output_tokens, specs)
    curve = operating_curve(policy, p, d.scores, costs, cfg.curve_thresholds)
    point = pick_point(curve, cfg.quality_target)
    if threshold is not None:
        point = next((c for c in curve if abs(c.threshold - threshold) < 1e-9), point)
    chosen = policy.choose(p, costs, point.threshold)
    report = routing_report(chosen, d.scores, d.adequate, costs, d.lengths, cfg.seed)
    return curve, point, report


def default_version(cfg: TrainConfig, digest: str) -> str:
    return f"{Path(cfg.logs[0]).stem}-minilm-{cfg.quantization}-{digest[:8]}"


def train(
    cfg: TrainConfig,
    embedder: Embedder | None = None,
    embedder_name: str | None = None,
    bundle_embedder: BundleEmbedder | None = None,
) -> TrainResult:
    """Train and publish a bundle. `embedder` (+ `embedder_name`, its cache key) replaces the
    sentence-transformers model and `bundle_embedder` the ONNX MiniLM export (tests: fakes)."""
    report = load_logs(cfg)
    turns: list[LabeledTurn] = report.turns
    digest = data_hash(turns)
    version = cfg.version or default_version(cfg, digest)
    if embedder is None:
        st = SentenceTransformerEmbedder(cfg.max_length, cfg.embed_batch_size)
        embedder, embedder_name = st, st.name
    name = embedder_name or type(embedder).__name__
    bundle_embedder = bundle_embedder or MiniLMBundleEmbedder(
        cfg.cache_dir / "onnx-embedders", cfg.max_length
    )

    cache = EmbedCache(cfg.cache_dir / "embeddings", embedder, name, progress=cfg.progress)
    data = build_arrays(turns, cache.embed_turns(turns), cfg.adequacy_threshold)
    train_idx, test_idx = split_holdout(data.labeled, data.adequate, cfg.holdout_fraction, cfg.seed)
    train_data, test_data = data.subset(train_idx), data.subset(test_idx)
    test_turns = [turns[i] for i in test_idx]
    log.info("%d train / %d held-out turns", len(train_idx), len(test_idx))

    heads = fit_heads(train_data, cfg.heads, cfg.cv_folds, cfg.seed)
    sk_probs = predict_proba(heads, test_data.features)
    specs = tier_specs()
    policy = get_policy(DEFAULT_POLICY)  # the policy serving applies to this bundle

    cfg.out_dir.mkdir(parents=True, exist_ok=True)
    staging = staging_dir(cfg.out_dir, version)
    try:
        classifier_spec = write_classifier(heads, staging, test_data.features[:PARITY_ROWS])
        spec = bundle_embedder.export(staging, cfg.quantization)
        manifest = Manifest.create(version, spec, classifier_spec, default_threshold=0.5)
        served = {}  # quantization -> held-out probs through the exported bundle
        for quant in dict.fromkeys((cfg.quantization, *cfg.compare_quantizations)):
            served[quant] = _served_probs(
                staging, manifest, spec, quant, cfg, bundle_embedder, test_turns
            )
        shipped = served[cfg.quantization]
        curve, point, shipped_report = evaluate(shipped, test_data, specs, cfg, policy)
        # The same threshold for every embedder, so the rows differ only by the embedder.
        st_report = evaluate(sk_probs, test_data, specs, cfg, policy, point.threshold)[2]
        routing = {cfg.quantization: shipped_report, "sklearn_st_fp32": st_report}
        for quant, probs in served.items():
            if quant != cfg.quantization:
                routing[quant] = evaluate(probs, test_data, specs, cfg, policy, point.threshold)[2]
        metrics = _metrics(heads, sk_probs, test_data, point, routing, specs, cfg, len(train_idx))
        manifest = manifest.model_copy(
            update={
                "default_threshold": point.threshold,
                "curve": [CurvePoint(*(round(v, 4) for v in astuple(c))) for c in curve],
                "metrics": metrics,
                "training": _training_info(cfg, report, digest, name, len(train_idx), test_turns),
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
    result = TrainResult(final, version, manifest, report, routing)
    if cfg.track:
        from training.tracking import log_training_run

        run = log_training_run(
            cfg.model_dump(mode="json"), metrics, final, cfg.experiment, cfg.registered_model
        )
        result = replace(result, mlflow_run_id=run.run_id, registered_version=run.model_version)
    return result


def _served_probs(
    staging: Path,
    manifest: Manifest,
    spec: EmbedderSpec,
    quant: str,
    cfg: TrainConfig,
    bundle_embedder: BundleEmbedder,
    turns: Sequence[LabeledTurn],
) -> NDArray[np.float32]:
    """Held-out P(adequate) through the exported classifier and a `quant` serving embedder."""
    with tempfile.TemporaryDirectory(prefix=f"embedder-{quant}-") as tmp:
        where, qspec = staging, spec
        if quant != spec.quantization:
            where = Path(tmp)
            qspec = bundle_embedder.export(where, quant)
        served = bundle_embedder.load(where, qspec)
        file = where / qspec.file
        name = served_cache_name(qspec, sha256_file(file) if file.is_file() else None)
        cache = EmbedCache(cfg.cache_dir / "embeddings", served, name, progress=cfg.progress)
        bundle = assemble_bundle(staging, manifest, CachedEmbedder(cache))
        return bundle.score([t.turn() for t in turns])


def _metrics(
    heads: Sequence[Any],
    sk_probs: NDArray[np.float64],
    test: TurnArrays,
    point: CurvePoint,
    routing: dict[str, list[RoutingOutcome]],
    specs: dict[Tier, TierSpec],
    cfg: TrainConfig,
    n_train: int,
) -> dict[str, Any]:
    return {
        "n_train": n_train,
        "n_heldout": len(test),
        "n_heldout_routing": int(test.fully_labeled.sum()),
        "default_threshold": point.threshold,
        "quality_target": cfg.quality_target,
        "heads": {
            h.tier: {"chosen": h.name, "n_train": h.n_train, "cv_log_loss": h.cv_log_loss}
            for h in heads
        },
        "heldout_heads": head_metrics(heads, sk_probs, test),
        "routing": {
            key: {o.name: outcome_dict(o) for o in outcomes} for key, outcomes in routing.items()
        },
        # What the cost shares were priced with: input + output_tokens per turn at these prices.
        "prices_input_per_mtok": {t.value: round(specs[t].input_per_mtok, 4) for t in TIER_ORDER},
        "prices_output_per_mtok": {t.value: round(specs[t].output_per_mtok, 4) for t in TIER_ORDER},
        "output_tokens": cfg.output_tokens,
    }


def _training_info(
    cfg: TrainConfig,
    report: LoadReport,
    digest: str,
    embedder: str,
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
        "train_embedder": embedder,
        "n_train": n_train,
        "n_heldout": len(heldout),
        # Lets eval score exactly the turns training never saw, without re-deriving the split.
        "heldout_ids": sorted(t.id for t in heldout),
        "seed": cfg.seed,
        "holdout_fraction": cfg.holdout_fraction,
        "cv_folds": cfg.cv_folds,
        "heads_considered": list(cfg.heads),
        "adequacy_threshold": cfg.adequacy_threshold,
        "sklearn": sklearn.__version__,
        "skl2onnx": skl2onnx.__version__,
    }

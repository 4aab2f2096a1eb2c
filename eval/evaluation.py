"""evaluate(cfg): score a bundle on held-out labeled turns, compare it with baselines, write the
HTML/JSON/Markdown report and log everything to MLflow."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field

from eval.baselines import knn_probs
from eval.bootstrap import apgr_intervals
from eval.curves import routing_metrics
from eval.dataset import EvalSet, judge_pairs, load_eval_set
from eval.quality import (
    EvalMetrics,
    calibration,
    judge_agreement,
    quality_by_category,
    tier_quality,
)
from eval.report import ReportFiles, write_reports
from eval.summary import ReportContext, headline_metrics
from router.core.bundle import ModelBundle, load_bundle
from router.core.economics import turn_costs
from router.core.embedder import Embedder
from router.core.features import Turn
from router.core.policy import Policy, bundle_policy
from router.core.tiers import TIER_ORDER, Tier
from router.settings import Settings
from training.data.embed_cache import DEFAULT_CACHE_DIR, EmbedCache, served_cache_name
from training.data.logs import LabeledTurn, label_arrays

log = logging.getLogger(__name__)


class EvalConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    # A bundle folder (manifest.json inside) or a folder of bundles with a DEFAULT pointer.
    model: Path
    # Labeled-log JSONL files with the held-out turns (training.data.logs format).
    data: tuple[Path, ...] = Field(min_length=1)
    # The training logs: used to drop eval turns seen in training and to fit the kNN baseline.
    # Without them overlap falls back to manifest training.train_ids and kNN is skipped.
    train_data: tuple[Path, ...] = ()
    # Labeled logs from `tierwise label` whose per-tier scores (with judges) override the eval
    # set's, matched by id: lets one eval set be re-judged without rewriting it.
    judge_scores: tuple[Path, ...] = ()
    # Report folder; files go to out/<bundle version>/ so runs of several bundles sit side by side.
    out: Path = Path("reports")
    # The policy's knob; None -> the bundle's default (when replaying the bundle's policy):
    # evaluate the operating point that would serve.
    threshold: float | None = Field(default=None, ge=0)
    # None -> manifest training.adequacy_threshold, else 0.5 (training's default): a score at or
    # above it counts as adequate when a record does not say.
    adequacy_threshold: float | None = Field(default=None, ge=0, le=1)
    # Output tokens priced per turn; the same assumption serving makes (Settings).
    output_tokens: int = Field(default=500, ge=0)
    # The registered router.core.policy Policy replayed on the eval turns; None -> the bundle's
    # own (manifest.policy), the one serving applies to it.
    policy: str | None = None
    # Neighbours for the kNN baseline: ~25 gives P(adequate) in 4% steps and smooths label noise.
    knn_neighbors: int = Field(default=25, gt=0)
    # Equal-width reliability bins; 10 keeps ~100+ turns per bin on a 2k-turn eval set.
    calibration_bins: int = Field(default=10, ge=2)
    # Bootstrap resamples for APGR intervals (0 skips them); 200 keeps the 95% bounds stable to
    # about +-0.005 and costs seconds.
    bootstrap: int = Field(default=200, ge=0)
    # Seed of the bootstrap resampling, so a rerun reproduces the report.
    seed: int = 0
    # Turns per bundle.score call: bounds memory, amortises onnxruntime call overhead.
    batch_size: int = Field(default=256, gt=0)
    # Embedding cache for the kNN baseline (shared with training); None embeds every time.
    cache_dir: Path | None = DEFAULT_CACHE_DIR
    # tiers.toml with prices; None -> the packaged one (plus ROUTER_TIERS__* env overrides).
    tiers_file: Path | None = None
    # Log params, metrics and the report files to MLflow.
    track: bool = True
    experiment: str = "tierwise-eval"
    # None -> $MLFLOW_TRACKING_URI, else training's default store.
    tracking_uri: str | None = None


@dataclass(frozen=True)
class EvalResult:
    version: str
    metrics: EvalMetrics
    dataset: dict[str, Any]
    files: ReportFiles
    context: ReportContext
    headline: dict[str, float]
    run_id: str | None
    tracking_uri: str | None


def score_turns(
    bundle: ModelBundle, turns: Sequence[Turn], batch_size: int
) -> tuple[NDArray[np.float64], NDArray[np.float32]]:
    """((n, k) P(adequate) from the bundle in manifest.labels (= TIER_ORDER) order, (n, dim) the
    turns' embeddings): what bundle.score computes, with the embeddings kept for the kNN baseline
    so the eval texts are embedded once."""
    dim = bundle.embedder.dim
    probs = [np.zeros((0, len(TIER_ORDER)))]
    embeddings = [np.zeros((0, dim), dtype=np.float32)]
    for i in range(0, len(turns), batch_size):
        features = bundle.features(turns[i : i + batch_size])
        probs.append(bundle.heads.predict(features).astype(np.float64))
        embeddings.append(features[:, :dim])
    return np.vstack(probs), np.vstack(embeddings)


def _embed(
    turns: Sequence[LabeledTurn], bundle: ModelBundle, cache: EmbedCache | None, batch_size: int
) -> NDArray[np.float32]:
    if cache is not None:
        return cache.embed_turns(turns)
    texts = [t.turn().text for t in turns]
    parts = [
        bundle.embedder.embed(texts[i : i + batch_size]) for i in range(0, len(texts), batch_size)
    ]
    return np.vstack(parts) if parts else np.zeros((0, bundle.embedder.dim), dtype=np.float32)


def knn_cache(bundle: ModelBundle, cache_dir: Path) -> EmbedCache:
    """The bundle embedder's cache, named as training names it (<cache_dir>/embeddings/...)."""
    m = bundle.manifest
    name = served_cache_name(m.embedder, m.files.get(m.embedder.file))
    return EmbedCache(cache_dir / "embeddings", bundle.embedder, name, progress=False)


def knn_baseline(
    evalset: EvalSet,
    eval_embeddings: NDArray[np.float32],
    bundle: ModelBundle,
    cfg: EvalConfig,
    adequacy: float,
    own_embedder: bool,
) -> NDArray[np.float64] | None:
    """(n, k) kNN P(adequate) for the eval turns (`eval_embeddings`, from score_turns), fitted on
    the training turns; None without training data."""
    if not evalset.train_turns:
        return None
    cache = None
    if cfg.cache_dir is not None and own_embedder:
        cache = knn_cache(bundle, cfg.cache_dir)
    _, train_adequate = label_arrays(evalset.train_turns, TIER_ORDER, adequacy)
    return knn_probs(
        _embed(evalset.train_turns, bundle, cache, cfg.batch_size),
        train_adequate,
        eval_embeddings,
        cfg.knn_neighbors,
    )


def compute_metrics(
    evalset: EvalSet,
    probs: NDArray[np.float64],
    costs: NDArray[np.float64],
    threshold: float,
    adequacy: float,
    n_bins: int,
    knn: NDArray[np.float64] | None,
    n_boot: int = 0,
    seed: int = 0,
    policy: Policy | None = None,
) -> EvalMetrics:
    """Every metric of the report; routing replays `policy` (default: the threshold policy; evaluate() passes the bundle's)."""
    tiers: tuple[Tier, ...] = TIER_ORDER
    turns = evalset.turns
    scores, adequate = label_arrays(turns, tiers, adequacy)
    lengths = np.asarray([t.turn().approx_tokens for t in turns], dtype=np.float64)
    categories = [t.category or "(none)" for t in turns]
    baselines = {"knn": knn} if knn is not None else None
    judges = tuple(
        judge_agreement(a, b, *arrays)
        for (a, b), arrays in sorted(judge_pairs(turns, adequacy).items())
    )
    return EvalMetrics(
        n=len(turns),
        tiers=tiers,
        tier_quality=tier_quality(scores, adequate, tiers),
        by_category=quality_by_category(scores, adequate, categories, tiers),
        judges=judges,
        calibration=calibration(probs, adequate, tiers, n_bins),
        routing=routing_metrics(
            probs,
            scores,
            adequate,
            costs,
            tiers,
            threshold,
            lengths=lengths,
            baselines=baselines,
            categories=categories,
            policy=policy,
        ),
        apgr_intervals=apgr_intervals(
            probs, scores, costs, lengths, baselines, n_boot, seed, policy=policy
        ),
    )


def _middle_knob(policy: Policy) -> float:
    """A knob for a policy the bundle was not tuned for: the threshold policy's 0.5; the
    utility policy's $0.10 (redoing a 20k-token Opus turn)."""
    return 0.5 if policy.knob_name == "threshold" else 0.10


def evaluate(cfg: EvalConfig, embedder: Embedder | None = None) -> EvalResult:
    """`embedder` replaces the bundle's own (tests use FakeEmbedder); see router.core.bundle.load_bundle."""
    bundle = load_bundle(cfg.model, embedder=embedder)
    manifest = bundle.manifest
    policy = bundle_policy(cfg.policy or manifest.policy, manifest.reference_cost_usd)
    evalset = load_eval_set(cfg.data, cfg.train_data, manifest, cfg.judge_scores)
    threshold = cfg.threshold
    if threshold is None:
        threshold = manifest.knob if policy.name == manifest.policy else _middle_knob(policy)
    adequacy = cfg.adequacy_threshold
    if adequacy is None:
        adequacy = float(manifest.training.get("adequacy_threshold", 0.5))
    settings = Settings(tiers_file=cfg.tiers_file) if cfg.tiers_file else Settings()
    turns = [t.turn() for t in evalset.turns]
    log.info("scoring %d turns with bundle %s", len(turns), bundle.version)
    probs, embeddings = score_turns(bundle, turns, cfg.batch_size)
    tokens = [t.approx_tokens for t in turns]
    costs = turn_costs(tokens, cfg.output_tokens, settings.tiers)
    knn = knn_baseline(evalset, embeddings, bundle, cfg, adequacy, own_embedder=embedder is None)
    metrics = compute_metrics(
        evalset,
        probs,
        costs,
        threshold,
        adequacy,
        cfg.calibration_bins,
        knn,
        cfg.bootstrap,
        cfg.seed,
        policy,
    )
    context = ReportContext(
        version=bundle.version,
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        data=tuple(str(p) for p in cfg.data),
        dataset=evalset.summary(),
        adequacy_threshold=adequacy,
        output_tokens=cfg.output_tokens,
        prices={t.value: settings.tier_spec(t).model_dump() for t in TIER_ORDER},
    )
    out_dir = cfg.out / bundle.version
    files = write_reports(metrics, context, out_dir)
    headline = headline_metrics(metrics, context)
    run_id = uri = None
    if cfg.track:
        from eval.tracking import log_eval_run

        run = log_eval_run(
            params=cfg.model_dump(mode="json"),
            metrics=headline,
            artifacts=out_dir,
            experiment=cfg.experiment,
            run_name=f"eval-{bundle.version}",
            tags={"bundle_version": bundle.version, "eval_data": ",".join(context.data)},
            tracking_uri=cfg.tracking_uri,
        )
        run_id, uri = run.run_id, run.tracking_uri
    return EvalResult(
        bundle.version, metrics, evalset.summary(), files, context, headline, run_id, uri
    )

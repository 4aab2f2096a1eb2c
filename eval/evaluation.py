"""evaluate(cfg): score a bundle on held-out labeled turns, fit the peer routers on the training
turns with the bundle's own features, route every method with the same policy and believed costs,
price the outcomes with the real answer lengths, write the HTML/JSON/Markdown report and log
everything to MLflow."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field, field_validator

from eval.dataset import EvalSet, judge_pairs, load_eval_set
from eval.peers import PEER_NAMES
from eval.peers.base import PeerFit
from eval.peers.data import PeerData, aux_names, peer_data
from eval.peers.fit import fit_peers, unknown_peer
from eval.quality import (
    EvalMetrics,
    calibration,
    judge_agreement,
    quality_by_category,
    tier_quality,
)
from eval.report import ReportFiles, write_reports
from eval.routing_metrics import RoutingInputs, routing_metrics
from eval.summary import ReportContext, headline_metrics
from router.core.bundle import ModelBundle, load_bundle
from router.core.economics import turn_costs
from router.core.embedder import Embedder
from router.core.features import Turn, feature_matrix
from router.core.manifest import Manifest
from router.core.policy import LEGACY_POLICY, Policy, bundle_policy, get_policy
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
    # The training logs: drop eval turns seen in training, fit the peers and give the policy's
    # per-tier answer lengths. Without them overlap falls back to manifest training.logs and
    # there are no peers (the report says so).
    train_data: tuple[Path, ...] = ()
    # Labeled logs from `tierwise label` whose per-tier scores (with judges) override the eval
    # set's, matched by id: lets one eval set be re-judged without rewriting it.
    judge_scores: tuple[Path, ...] = ()
    # Report folder; files go to out/<bundle version>/ so runs of several bundles sit side by side.
    out: Path = Path("reports")
    # The policy's knob the router is shown at; None -> the bundle's default_threshold:
    # evaluate the operating point that would serve.
    threshold: float | None = Field(default=None, ge=0)
    # None -> manifest training.adequacy_threshold, else 0.5 (training's default): a score at or
    # above it counts as adequate when a record does not say.
    adequacy_threshold: float | None = Field(default=None, ge=0, le=1)
    # Answer tokens priced where the data has no answer length (TierScore.output_tokens), and
    # what the policy expects per tier when the training logs record none; serving's default.
    output_tokens: int = Field(default=500, ge=0)
    # The registered router.core.policy Policy every method is routed with; None -> the
    # bundle's own (manifest "policy", else serving's default).
    policy: str | None = None
    # Peer routers fitted on the training turns (eval.peers.PEERS); all by default, () for none.
    peers: tuple[str, ...] = PEER_NAMES
    # Equal-width reliability bins; 10 keeps ~100+ turns per bin on a 2k-turn eval set.
    calibration_bins: int = Field(default=10, ge=2)
    # Paired bootstrap resamples for every interval (0 skips them); issue 8's 500.
    bootstrap: int = Field(default=500, ge=0)
    # Seed of the peers' inner CV and of the bootstrap, so a rerun reproduces the report.
    seed: int = 0
    # Turns per bundle.score call: bounds memory, amortises onnxruntime call overhead.
    batch_size: int = Field(default=256, gt=0)
    # Embedding cache for the training turns (shared with training); None embeds every time.
    cache_dir: Path | None = DEFAULT_CACHE_DIR
    # tiers.toml with prices; None -> the packaged one (plus ROUTER_TIERS__* env overrides).
    tiers_file: Path | None = None
    # Progress bars while embedding and fitting peers.
    progress: bool = False
    # Log params, metrics and the report files to MLflow.
    track: bool = True
    experiment: str = "tierwise-eval"
    # None -> $MLFLOW_TRACKING_URI, else training's default store.
    tracking_uri: str | None = None

    @field_validator("peers")
    @classmethod
    def _registered(cls, peers: tuple[str, ...]) -> tuple[str, ...]:
        for name in peers:
            if name not in PEER_NAMES:
                raise ValueError(unknown_peer(name))
        return peers


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


@dataclass(frozen=True)
class Scored:
    """What the bundle predicts for the eval turns, columns in manifest.labels (= TIER_ORDER)
    order, with the features kept for the peers so the eval texts are embedded once."""

    probs: NDArray[np.float64]  # (n, k) P(adequate)
    tokens: NDArray[np.float64] | None  # (n, k) expected answer tokens; None: not predicted
    features: NDArray[np.float32]  # (n, input_dim)


def score_turns(bundle: ModelBundle, turns: Sequence[Turn], batch_size: int) -> Scored:
    """What bundle.predict computes, batch by batch."""
    k = len(TIER_ORDER)
    probs, tokens = [np.zeros((0, k))], [np.zeros((0, k))]
    features = [np.zeros((0, bundle.manifest.input_dim), dtype=np.float32)]
    predicts_tokens = True
    for i in range(0, len(turns), batch_size):
        x = bundle.features(turns[i : i + batch_size])
        scores = bundle.heads.scores(x)
        probs.append(scores.quality.astype(np.float64))
        if scores.output_tokens is None:
            predicts_tokens = False
        else:
            tokens.append(scores.output_tokens.astype(np.float64))
        features.append(x)
    forecast = np.vstack(tokens) if predicts_tokens else None
    return Scored(np.vstack(probs), forecast, np.vstack(features))


def embedding_cache(bundle: ModelBundle, cache_dir: Path, progress: bool = False) -> EmbedCache:
    """The bundle embedder's cache, named as training names it (<cache_dir>/embeddings/...)."""
    m = bundle.manifest
    name = served_cache_name(m.embedder, m.files.get(m.embedder.file))
    return EmbedCache(cache_dir / "embeddings", bundle.embedder, name, progress=progress)


def train_features(
    turns: Sequence[LabeledTurn], bundle: ModelBundle, cache: EmbedCache | None, batch_size: int
) -> NDArray[np.float32]:
    """(n, input_dim): the bundle's features of the training turns (embedding, structure, then
    hand features when the bundle has them), as bundle.features builds them for the eval turns."""
    if cache is not None:
        emb = cache.embed_turns(turns)
    else:
        texts = [t.turn().text for t in turns]
        parts = [bundle.embedder.embed(texts[i : i + batch_size])
                 for i in range(0, len(texts), batch_size)]  # fmt: skip
        emb = np.vstack(parts) if parts else np.zeros((0, bundle.embedder.dim), np.float32)
    return feature_matrix(emb, [t.turn() for t in turns], bool(bundle.manifest.hand_features))


def recorded_lengths(turns: Sequence[LabeledTurn], tiers: Sequence[Tier]) -> NDArray[np.float64]:
    """(n, k) each tier's recorded answer tokens (TierScore.output_tokens), NaN where unknown."""
    out = np.full((len(turns), len(tiers)), np.nan)
    for i, t in enumerate(turns):
        for j, tier in enumerate(tiers):
            s = t.scores.get(tier)
            if s is not None and s.output_tokens is not None:
                out[i, j] = s.output_tokens
    return out


def expected_lengths(train: Sequence[LabeledTurn], default: int) -> NDArray[np.float64]:
    """(k,) the answer tokens the policy expects per tier: the training logs' mean where they
    record lengths, else `default`. The same for every method, so the comparison isolates the
    quality estimate."""
    lengths = recorded_lengths(train, TIER_ORDER)
    counts = (~np.isnan(lengths)).sum(axis=0)
    sums = np.nansum(lengths, axis=0)
    return np.where(counts > 0, sums / np.maximum(counts, 1), float(default))


def label_sources(turns: Sequence[LabeledTurn]) -> dict[str, dict[str, int]]:
    """tier -> where its labels come from (TierScore.source) -> how many turns."""
    out: dict[str, Counter[str]] = {t.value: Counter() for t in TIER_ORDER}
    for turn in turns:
        for tier, score in turn.scores.items():
            out[tier.value][score.source] += 1
    return {tier: dict(c.most_common()) for tier, c in out.items() if c}


def default_knob(policy: Policy, manifest: Manifest) -> float:
    """The knob the router is shown at: the bundle's own when `policy` is the bundle's; else a
    middle one, the threshold policy's 0.5 or the utility policy's $0.10 (redoing a 20k-token
    Opus turn)."""
    if policy.name == manifest.policy:
        return manifest.knob
    return 0.5 if policy.knob_name == "threshold" else 0.10


def _peer_fits(
    cfg: EvalConfig,
    evalset: EvalSet,
    bundle: ModelBundle,
    eval_features: NDArray[np.float32],
    adequacy: float,
    own_embedder: bool,
) -> tuple[dict[str, PeerFit], str | None]:
    """The peers' fits, or ({}, why there are none)."""
    if not cfg.peers:
        return {}, "no peers requested"
    if not evalset.train_turns:
        return {}, "no training data (--train-data): peers need the training turns"
    cache = None
    if cfg.cache_dir is not None and own_embedder:
        cache = embedding_cache(bundle, cfg.cache_dir, cfg.progress)
    dim = bundle.embedder.dim
    names = aux_names(evalset.train_turns)
    x_train = train_features(evalset.train_turns, bundle, cache, cfg.batch_size)
    train = peer_data(evalset.train_turns, x_train, dim, adequacy, names)
    test = peer_data(evalset.turns, eval_features, dim, adequacy)
    test = PeerData(test.features, dim, np.full_like(test.adequate, np.nan), None, test.categories)
    return fit_peers(cfg.peers, train, test, cfg.seed, cfg.progress), None


def compute_metrics(
    evalset: EvalSet,
    probs: NDArray[np.float64],
    peers: dict[str, PeerFit],
    costs: NDArray[np.float64],
    policy_costs: NDArray[np.float64],
    knob: float,
    adequacy: float,
    n_bins: int,
    n_boot: int = 0,
    seed: int = 0,
    policy: Policy | None = None,
    peers_skipped: str | None = None,
) -> EvalMetrics:
    """Every metric of the report; every method is routed with `policy` (default: serving's)."""
    tiers: tuple[Tier, ...] = TIER_ORDER
    turns = evalset.turns
    scores, adequate = label_arrays(turns, tiers, adequacy)
    categories = np.asarray([t.category or "(none)" for t in turns], dtype=str)
    judges = tuple(
        judge_agreement(a, b, *arrays)
        for (a, b), arrays in sorted(judge_pairs(turns, adequacy).items())
    )
    inputs = RoutingInputs(
        scores=scores,
        adequate=adequate,
        costs=costs,
        policy_costs=policy_costs,
        lengths=np.asarray([t.turn().approx_tokens for t in turns], dtype=np.float64),
        categories=categories,
        tiers=tiers,
    )
    sweep_policy = policy or get_policy(LEGACY_POLICY)
    peer_probs = {name: fit.probs for name, fit in peers.items()}
    return EvalMetrics(
        n=len(turns),
        tiers=tiers,
        tier_quality=tier_quality(scores, adequate, tiers),
        by_category=quality_by_category(scores, adequate, categories.tolist(), tiers),
        judges=judges,
        calibration=calibration(probs, adequate, tiers, n_bins),
        routing=routing_metrics(inputs, probs, peer_probs, sweep_policy, knob, n_boot, seed),
        peer_calibration={
            name: calibration(p, adequate, tiers, n_bins) for name, p in peer_probs.items()
        },
        peer_params={name: fit.params for name, fit in peers.items()},
        peers_skipped=peers_skipped,
    )


def evaluate(cfg: EvalConfig, embedder: Embedder | None = None) -> EvalResult:
    """`embedder` replaces the bundle's own (tests use FakeEmbedder); see router.core.bundle.load_bundle."""
    bundle = load_bundle(cfg.model, embedder=embedder)
    manifest = bundle.manifest
    policy = bundle_policy(cfg.policy or manifest.policy, manifest.reference_cost_usd)
    evalset = load_eval_set(cfg.data, cfg.train_data, manifest, cfg.judge_scores)
    knob = cfg.threshold if cfg.threshold is not None else default_knob(policy, manifest)
    adequacy = cfg.adequacy_threshold
    if adequacy is None:
        adequacy = float(manifest.training.get("adequacy_threshold", 0.5))
    settings = Settings(tiers_file=cfg.tiers_file) if cfg.tiers_file else Settings()
    turns = [t.turn() for t in evalset.turns]
    log.info("scoring %d turns with bundle %s", len(turns), bundle.version)
    scored = score_turns(bundle, turns, cfg.batch_size)
    probs = scored.probs
    own = embedder is None
    peers, skipped = _peer_fits(cfg, evalset, bundle, scored.features, adequacy, own)
    tokens = [t.approx_tokens for t in turns]
    recorded = recorded_lengths(evalset.turns, TIER_ORDER)
    costs = turn_costs(tokens, np.where(np.isnan(recorded), cfg.output_tokens, recorded),
                       settings.tiers)  # fmt: skip
    # The answer tokens every method's policy expects: the bundle's forecast per turn when it
    # makes one (what serving prices), else the training logs' mean per tier.
    expected = expected_lengths(evalset.train_turns, cfg.output_tokens)
    believed = scored.tokens if scored.tokens is not None else np.tile(expected, (len(turns), 1))
    policy_costs = turn_costs(tokens, believed, settings.tiers)
    metrics = compute_metrics(
        evalset,
        probs,
        peers,
        costs,
        policy_costs,
        knob,
        adequacy,
        cfg.calibration_bins,
        cfg.bootstrap,
        cfg.seed,
        policy,
        skipped,
    )
    context = ReportContext(
        version=bundle.version,
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        data=tuple(str(p) for p in cfg.data),
        dataset=evalset.summary(),
        adequacy_threshold=adequacy,
        output_tokens=cfg.output_tokens,
        prices={t.value: settings.tier_spec(t).model_dump() for t in TIER_ORDER},
        policy=policy.name,
        recorded_lengths=float((~np.isnan(recorded)).mean()) if recorded.size else 0.0,
        expected_lengths={
            t.value: round(float(v), 1)
            for t, v in zip(
                TIER_ORDER, believed.mean(axis=0) if len(turns) else expected, strict=True
            )
        },  # fmt: skip
        lengths_forecast=scored.tokens is not None,
        n_boot=cfg.bootstrap,
        label_sources=label_sources(evalset.turns),
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

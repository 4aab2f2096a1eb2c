"""Pure quality metrics: arrays in, frozen dataclasses out. No IO, plotting or printing.

Conventions: column j of every (n, k) array is `tiers[j]`, cheapest first. `scores` are quality in
[0, 1] and `adequate` is 1.0/0.0, both NaN where that tier was not labeled; `probs` are the
router's P(adequate). Routing curves, peers, baselines and the oracle live in
eval.routing_metrics.

Partial labels: per-tier numbers (quality, per-category quality, calibration, judge agreement) use
every row labeled for that tier and report their n; nothing is imputed. Routing numbers use only
rows labeled for every routing tier (eval.curves says how).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from eval.routing_metrics import RoutingMetrics
from router.core.tiers import Tier

FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class TierQuality:
    tier: Tier
    n: int  # rows labeled for this tier
    mean_score: float
    adequate_rate: float


@dataclass(frozen=True)
class CategoryQuality:
    category: str
    n: int
    tiers: tuple[TierQuality, ...]


@dataclass(frozen=True)
class JudgeAgreement:
    judge_a: str
    judge_b: str
    n: int  # (turn, tier) pairs both judges scored
    pearson: float
    spearman: float
    kappa: float  # Cohen's kappa on the adequate verdicts
    mean_abs_diff: float


@dataclass(frozen=True)
class ReliabilityBin:
    lo: float
    hi: float
    n: int
    mean_prob: float
    frac_adequate: float


@dataclass(frozen=True)
class Calibration:
    tier: Tier
    n: int
    ece: float  # expected calibration error over equal-width bins
    brier: float
    auc: float  # how well P(adequate) ranks adequate above inadequate turns; 0.5 = chance
    bins: tuple[ReliabilityBin, ...]


def nan_mean(x: FloatArray) -> float:
    x = x[~np.isnan(x)]
    return float(x.mean()) if x.size else float("nan")


def tier_quality(
    scores: FloatArray, adequate: FloatArray, tiers: Sequence[Tier]
) -> tuple[TierQuality, ...]:
    return tuple(
        TierQuality(
            tier=t,
            n=int((~np.isnan(scores[:, j])).sum()),
            mean_score=nan_mean(scores[:, j]),
            adequate_rate=nan_mean(adequate[:, j]),
        )
        for j, t in enumerate(tiers)
    )


def quality_by_category(
    scores: FloatArray, adequate: FloatArray, categories: Sequence[str], tiers: Sequence[Tier]
) -> tuple[CategoryQuality, ...]:
    """Per-tier quality within each category, categories sorted by name."""
    cats = np.asarray(categories, dtype=object)
    out = []
    for cat in sorted(set(categories)):
        rows = cats == cat
        out.append(
            CategoryQuality(cat, int(rows.sum()), tier_quality(scores[rows], adequate[rows], tiers))
        )
    return tuple(out)


def pearson(a: FloatArray, b: FloatArray) -> float:
    """NaN when either side is constant (correlation undefined)."""
    a, b = a - a.mean(), b - b.mean()
    denom = float(np.sqrt((a * a).sum() * (b * b).sum()))
    return float((a * b).sum()) / denom if denom > 0 else float("nan")


def rank(x: FloatArray) -> FloatArray:
    """1-based ranks, ties get the average rank of their group."""
    order = np.argsort(x, kind="stable")
    ranks = np.empty(len(x), dtype=np.float64)
    sorted_x = x[order]
    i = 0
    while i < len(x):
        j = i
        while j + 1 < len(x) and sorted_x[j + 1] == sorted_x[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def spearman(a: FloatArray, b: FloatArray) -> float:
    return pearson(rank(a), rank(b))


def cohen_kappa(a: NDArray[np.bool_], b: NDArray[np.bool_]) -> float:
    """(p_observed - p_chance) / (1 - p_chance); NaN if both raters give one constant label."""
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    p_obs = float((a == b).mean())
    p_chance = float(a.mean() * b.mean() + (1 - a.mean()) * (1 - b.mean()))
    return (p_obs - p_chance) / (1 - p_chance) if p_chance < 1 else float("nan")


def judge_agreement(
    judge_a: str,
    judge_b: str,
    scores_a: FloatArray,
    scores_b: FloatArray,
    adequate_a: NDArray[np.bool_],
    adequate_b: NDArray[np.bool_],
) -> JudgeAgreement:
    """Inputs are aligned 1-D arrays over the (turn, tier) pairs both judges scored."""
    return JudgeAgreement(
        judge_a,
        judge_b,
        len(scores_a),
        pearson(scores_a, scores_b),
        spearman(scores_a, scores_b),
        cohen_kappa(adequate_a, adequate_b),
        float(np.abs(scores_a - scores_b).mean()) if len(scores_a) else float("nan"),
    )


def roc_auc(scores: FloatArray, positive: NDArray[np.bool_]) -> float:
    """P(a random positive scores above a random negative), ties counting half (Mann-Whitney U);
    NaN without both classes."""
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    u = rank(scores)[positive].sum() - n_pos * (n_pos + 1) / 2
    return float(u / (n_pos * n_neg))


def calibration(
    probs: FloatArray, adequate: FloatArray, tiers: Sequence[Tier], n_bins: int = 10
) -> tuple[Calibration, ...]:
    """Reliability over equal-width bins of P(adequate), per tier, on rows labeled for it."""
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    out = []
    for j, tier in enumerate(tiers):
        rows = ~np.isnan(adequate[:, j])
        p, y = probs[rows, j].astype(np.float64), adequate[rows, j]
        idx = np.clip(np.digitize(p, edges[1:-1], right=False), 0, n_bins - 1)
        bins, ece = [], 0.0
        for b in range(n_bins):
            sel = idx == b
            m = int(sel.sum())
            conf = float(p[sel].mean()) if m else float("nan")
            acc = float(y[sel].mean()) if m else float("nan")
            if m:
                ece += m / len(p) * abs(acc - conf)
            bins.append(ReliabilityBin(float(edges[b]), float(edges[b + 1]), m, conf, acc))
        brier = float(((p - y) ** 2).mean()) if len(p) else float("nan")
        ece = ece if len(p) else float("nan")
        out.append(Calibration(tier, len(p), ece, brier, roc_auc(p, y == 1.0), tuple(bins)))
    return tuple(out)


@dataclass(frozen=True)
class EvalMetrics:
    n: int
    tiers: tuple[Tier, ...]
    tier_quality: tuple[TierQuality, ...]
    by_category: tuple[CategoryQuality, ...]
    judges: tuple[JudgeAgreement, ...]
    calibration: tuple[Calibration, ...]  # the router's
    routing: RoutingMetrics | None  # None when fewer than two tiers share a labeled row
    # Each peer's calibration on the same turns, and what its inner CV chose.
    peer_calibration: dict[str, tuple[Calibration, ...]] = field(default_factory=dict)
    peer_params: dict[str, dict[str, Any]] = field(default_factory=dict)
    peers_skipped: str | None = None  # why there are no peers, when there are none

"""Pure routing metrics: arrays in, frozen dataclasses out (shared with eval/).

Conventions: tier columns are cheapest first (router.core.tiers.TIER_ORDER); `scores` (n, k) are
per-tier quality in [0, 1]; `tokens` (n,) are input tokens; `prices` (k,) are USD per token
(or any unit: only ratios are reported). A turn no tier handles adequately has the top tier as
its "true" tier, matching the policy, which escalates when no tier clears the threshold.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.floating]
IntArray = NDArray[np.integer]
BoolArray = NDArray[np.bool_]


@dataclass(frozen=True)
class RoutingOutcome:
    """One policy on one set of turns. *_share values are relative to always-top."""

    name: str
    n: int
    tier_accuracy: float  # chosen tier == true cheapest-adequate tier
    quality: float  # mean score of the chosen tier
    quality_share: float  # quality / always-top quality
    cost_share: float  # total cost / always-top total cost
    cost_saved: float  # 1 - cost_share
    under_routed: float  # share of turns sent below their cheapest-adequate tier
    over_routed: float  # share of turns sent above it
    tier_mix: tuple[float, ...]  # share of turns per tier, cheapest first


@dataclass(frozen=True)
class OperatingPoint:
    threshold: float
    quality: float  # share of always-top quality
    cost: float  # share of always-top cost


def cheapest_adequate(adequate: BoolArray) -> IntArray:
    """(n,) index of the first adequate tier per row; the top tier when none is adequate."""
    adequate = np.asarray(adequate, dtype=bool)
    top = adequate.shape[1] - 1
    first = np.argmax(adequate, axis=1)
    out: IntArray = np.where(adequate.any(axis=1), first, top).astype(np.int64)
    return out


def choose_by_threshold(probs: FloatArray, threshold: float) -> IntArray:
    """(n,) cheapest tier with P(adequate) >= threshold, else the top tier (router.core.policy)."""
    return cheapest_adequate(np.asarray(probs) >= threshold)


def tier_mix(chosen: IntArray, n_tiers: int) -> tuple[float, ...]:
    if len(chosen) == 0:
        return tuple(0.0 for _ in range(n_tiers))
    counts = np.bincount(np.asarray(chosen, dtype=np.int64), minlength=n_tiers)
    return tuple(float(c) for c in counts / len(chosen))


def evaluate_routing(
    name: str,
    chosen: IntArray,
    scores: FloatArray,
    adequate: BoolArray,
    tokens: FloatArray,
    prices: FloatArray,
) -> RoutingOutcome:
    """Quality and cost of sending row i to tier chosen[i], against always sending to the top."""
    chosen = np.asarray(chosen, dtype=np.int64)
    scores = np.asarray(scores, dtype=np.float64)
    tokens = np.asarray(tokens, dtype=np.float64)
    prices = np.asarray(prices, dtype=np.float64)
    n, k = scores.shape
    if n == 0:
        raise ValueError("evaluate_routing needs at least one row")
    truth = cheapest_adequate(adequate)
    quality_share, cost_share = shares(chosen, scores, tokens, prices)
    return RoutingOutcome(
        name=name,
        n=n,
        tier_accuracy=float((chosen == truth).mean()),
        quality=float(scores[np.arange(n), chosen].mean()),
        quality_share=quality_share,
        cost_share=cost_share,
        cost_saved=1.0 - cost_share,
        under_routed=float((chosen < truth).mean()),
        over_routed=float((chosen > truth).mean()),
        tier_mix=tier_mix(chosen, k),
    )


def shares(
    chosen: IntArray, scores: FloatArray, tokens: FloatArray, prices: FloatArray
) -> tuple[float, float]:
    """(quality share, cost share) of a tier assignment, both relative to always-top."""
    chosen = np.asarray(chosen, dtype=np.int64)
    scores = np.asarray(scores, dtype=np.float64)
    tokens = np.asarray(tokens, dtype=np.float64)
    prices = np.asarray(prices, dtype=np.float64)
    top_quality = float(scores[:, -1].mean())
    top_cost = float((tokens * prices[-1]).sum())
    quality = float(scores[np.arange(len(chosen)), chosen].mean())
    cost = float((tokens * prices[chosen]).sum())
    return (
        quality / top_quality if top_quality > 0 else float("nan"),
        cost / top_cost if top_cost > 0 else float("nan"),
    )


def operating_curve(
    probs: FloatArray,
    scores: FloatArray,
    tokens: FloatArray,
    prices: FloatArray,
    thresholds: Sequence[float],
) -> list[OperatingPoint]:
    """Held-out (threshold -> quality share, cost share) points, for Manifest.curve."""
    points = []
    for t in thresholds:
        quality, cost = shares(choose_by_threshold(probs, t), scores, tokens, prices)
        points.append(OperatingPoint(float(t), quality, cost))
    return points


def pick_threshold(curve: Sequence[OperatingPoint], quality_target: float) -> OperatingPoint:
    """The cheapest point reaching `quality_target`; the best-quality point if none does."""
    reachable = [p for p in curve if p.quality >= quality_target]
    if reachable:
        return min(reachable, key=lambda p: (p.cost, p.threshold))
    return max(curve, key=lambda p: (p.quality, -p.cost))


def mix_counts(mix: Sequence[float], n: int) -> IntArray:
    """Integer counts per tier summing to n, closest to `mix` (largest remainder)."""
    raw = np.asarray(mix, dtype=np.float64) * n
    counts = np.floor(raw).astype(np.int64)
    order = np.argsort(-(raw - counts), kind="stable")
    counts[order[: n - int(counts.sum())]] += 1
    return counts


def random_at_mix(mix: Sequence[float], n: int, seed: int) -> IntArray:
    """A random assignment with exactly the given tier mix (seeded)."""
    counts = mix_counts(mix, n)
    chosen = np.repeat(np.arange(len(counts)), counts)
    return np.random.default_rng(seed).permutation(chosen).astype(np.int64)


def length_at_mix(lengths: FloatArray, mix: Sequence[float]) -> IntArray:
    """Longer prompt -> higher tier: rank by length, fill tiers cheapest first at `mix`."""
    lengths = np.asarray(lengths)
    counts = mix_counts(mix, len(lengths))
    order = np.argsort(lengths, kind="stable")
    chosen = np.empty(len(lengths), dtype=np.int64)
    chosen[order] = np.repeat(np.arange(len(counts)), counts)
    return chosen


def routing_report(
    router_chosen: IntArray,
    scores: FloatArray,
    adequate: BoolArray,
    tokens: FloatArray,
    prices: FloatArray,
    lengths: FloatArray,
    seed: int = 0,
) -> list[RoutingOutcome]:
    """The router and its baselines on the same turns: always-cheap, always-top, random and
    length heuristic at the router's own tier mix."""
    n, k = np.asarray(scores).shape
    mix = tier_mix(router_chosen, k)

    def run(name: str, chosen: IntArray) -> RoutingOutcome:
        return evaluate_routing(name, chosen, scores, adequate, tokens, prices)

    return [
        run("router", router_chosen),
        run("always_cheap", np.zeros(n, dtype=np.int64)),
        run("always_top", np.full(n, k - 1, dtype=np.int64)),
        run("random_at_mix", random_at_mix(mix, n, seed)),
        run("length_at_mix", length_at_mix(lengths, mix)),
        run("oracle", cheapest_adequate(adequate)),
    ]

"""Pure routing metrics: arrays in, frozen dataclasses out. No IO, plotting or printing.

Conventions as in eval.quality: column j is `tiers[j]`, cheapest first; `scores` (n, k) quality in
[0, 1] and `adequate` (n, k) 1.0/0.0, both NaN where a tier was not labeled; `costs` (n, k) USD per
turn (router.core.economics.turn_costs); `probs` (n, k) a router's P(adequate). Routing replays a
registered router.core.policy Policy (serving's by default) through its vectorised `choose`.

Partial labels: routing needs the score of whichever tier is chosen, so it uses only the rows
labeled for every routing tier; a tier labeled on no row at all is dropped from routing (the router
is scored as if clamped to the labeled tiers). Dropped rows and tiers are reported, never hidden.

Cost axis: cost_share = (cost - always-cheapest cost) / (always-top cost - always-cheapest cost).
With two tiers and equal-length turns it is RouteLLM's "% calls to the strong model"; with three it
counts a middle-tier call as the part of the price gap it spends. PGR, APGR and CPT use that axis;
AIQ (RouterBench) uses raw cost and quality.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from router.core.policy import LEGACY_POLICY, Policy, cheapest_adequate, get_policy
from router.core.tier_mix import length_at_mix, tier_mix
from router.core.tiers import Tier

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.integer[Any]]
# Threshold above any probability: every turn goes to the top tier (the threshold policy's fallback).
ABOVE_ONE = float(np.nextafter(1.0, 2.0))
# Upper bound on distinct thresholds in a sweep; quantiles of the probabilities beyond that.
MAX_SWEEP_POINTS = 400


@dataclass(frozen=True)
class Reference:
    """Anchors of the normalised axes: the always-cheapest and always-top policies."""

    cheap_quality: float
    top_quality: float
    cheap_cost: float
    top_cost: float

    def pgr(self, quality: float) -> float:
        """Performance gap recovered: 0 at always-cheapest quality, 1 at always-top."""
        gap = self.top_quality - self.cheap_quality
        return (quality - self.cheap_quality) / gap if gap > 0 else float("nan")

    def cost_share(self, cost: float) -> float:
        span = self.top_cost - self.cheap_cost
        return (cost - self.cheap_cost) / span if span > 0 else float("nan")


@dataclass(frozen=True)
class PolicyPoint:
    """A policy (or baseline) at one setting on the eval turns, in absolute units and on the
    normalised axes (manifest.curve's CurvePoint is training's shares-of-always-top view)."""

    name: str
    threshold: float | None
    quality: float  # mean score of the chosen tier
    cost: float  # mean USD per turn
    cost_share: float
    pgr: float
    calls: tuple[float, ...]  # share of turns sent to each routing tier


@dataclass(frozen=True)
class Curve:
    """A policy family swept from always-cheapest to always-top; points sorted by cost."""

    name: str
    points: tuple[PolicyPoint, ...]
    apgr: float
    cpt50: float
    cpt80: float
    aiq: float


@dataclass(frozen=True)
class Confusion:
    """counts[i][j]: turns whose cheapest adequate tier is true_labels[i], routed to tiers[j].
    "none" means no tier was adequate; those turns count as neither under- nor over-routed."""

    true_labels: tuple[str, ...]
    tiers: tuple[Tier, ...]
    counts: tuple[tuple[int, ...], ...]
    exact_rate: float
    under_rate: float  # routed below the cheapest adequate tier: quality lost
    over_rate: float  # routed above it: money spent for nothing


@dataclass(frozen=True)
class CategoryRouting:
    """The router at its threshold within one category, against fixed tiers there."""

    category: str
    n: int
    calls: tuple[float, ...]  # share of the category's turns per routing tier
    quality: float
    cost_vs_top: float  # router cost / always-top cost, within the category
    tier_quality: tuple[float, ...]  # always-<tier> quality within the category


@dataclass(frozen=True)
class RoutingMetrics:
    tiers: tuple[Tier, ...]  # tiers routing was scored over
    dropped_tiers: tuple[Tier, ...]  # labeled on no row
    n: int  # rows labeled for every routing tier
    n_incomplete: int  # rows left out for a missing routing-tier label
    reference: Reference
    router_threshold: float
    router: PolicyPoint
    oracle: PolicyPoint
    random_same_mix: PolicyPoint
    always: tuple[PolicyPoint, ...]
    curves: tuple[Curve, ...]  # "router", "random", "length"?, then `baselines` keys
    confusion: Confusion
    by_category: tuple[CategoryRouting, ...] = ()


def oracle_choice(adequate: FloatArray) -> IntArray:
    """The cheapest adequate tier; the cheapest tier when none is adequate (none helps)."""
    ok = adequate == 1.0
    return np.where(ok.any(axis=1), cheapest_adequate(ok), 0).astype(np.int64)


def reference(scores: FloatArray, costs: FloatArray) -> Reference:
    return Reference(
        float(scores[:, 0].mean()),
        float(scores[:, -1].mean()),
        float(costs[:, 0].mean()),
        float(costs[:, -1].mean()),
    )


def operating_point(
    name: str,
    chosen: IntArray,
    scores: FloatArray,
    costs: FloatArray,
    ref: Reference,
    threshold: float | None = None,
) -> PolicyPoint:
    rows = np.arange(len(chosen))
    quality = float(scores[rows, chosen].mean())
    cost = float(costs[rows, chosen].mean())
    return PolicyPoint(
        name,
        threshold,
        quality,
        cost,
        ref.cost_share(cost),
        ref.pgr(quality),
        tier_mix(chosen, scores.shape[1]),
    )


def mix_point(
    name: str, calls: Sequence[float], scores: FloatArray, costs: FloatArray, ref: Reference
) -> PolicyPoint:
    """Expected quality and cost of sending each turn to tier j with probability calls[j]."""
    mix = np.asarray(calls, dtype=np.float64)
    quality = float(mix @ scores.mean(axis=0))
    cost = float(mix @ costs.mean(axis=0))
    return PolicyPoint(
        name, None, quality, cost, ref.cost_share(cost), ref.pgr(quality), tuple(mix.tolist())
    )


def sweep_thresholds(probs: FloatArray, max_points: int = MAX_SWEEP_POINTS) -> FloatArray:
    """0 (all cheapest), every distinct probability (or quantiles of them), ABOVE_ONE (all top)."""
    values = np.unique(probs)
    if len(values) > max_points:
        values = np.unique(np.quantile(values, np.linspace(0, 1, max_points)))
    return np.unique(np.concatenate([[0.0], values, [ABOVE_ONE]]))


def sweep_knobs(
    policy: Policy, probs: FloatArray, costs: FloatArray, max_points: int = MAX_SWEEP_POINTS
) -> FloatArray:
    """The policy's own knobs (router.core.policy: where its choices change), from all
    cheapest to all top: the threshold policy's are sweep_thresholds."""
    return np.asarray(policy.knobs(probs, costs, max_points=max_points), dtype=np.float64)


def _xy(points: Sequence[PolicyPoint]) -> tuple[FloatArray, FloatArray]:
    """(cost_share, pgr) sorted by cost; at equal cost keep the best pgr."""
    best: dict[float, float] = {}
    for p in points:
        best[p.cost_share] = max(best.get(p.cost_share, -np.inf), p.pgr)
    x = np.asarray(sorted(best), dtype=np.float64)
    return x, np.asarray([best[v] for v in x], dtype=np.float64)


def apgr(points: Sequence[PolicyPoint]) -> float:
    """Area under PGR over cost_share in [0, 1] (trapezoid); 0.5 for a random mix of the ends."""
    x, y = _xy(points)
    if len(x) < 2 or np.isnan(x).any() or np.isnan(y).any():
        return float("nan")
    return float(np.sum((x[1:] - x[:-1]) * (y[1:] + y[:-1]) / 2))


def cpt(points: Sequence[PolicyPoint], target: float) -> float:
    """Smallest cost_share at which the piecewise-linear PGR curve reaches `target`; NaN if never."""
    x, y = _xy(points)
    for i in range(len(x)):
        if y[i] >= target:
            if i == 0 or y[i] == y[i - 1]:
                return float(x[i])
            frac = (target - y[i - 1]) / (y[i] - y[i - 1])
            return float(x[i - 1] + max(frac, 0.0) * (x[i] - x[i - 1]))
    return float("nan")


def upper_hull(x: FloatArray, y: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Non-decreasing upper convex hull of points sorted by x (what mixing policies can reach)."""
    hull: list[tuple[float, float]] = []
    for px, py in zip(x.tolist(), y.tolist(), strict=True):
        while len(hull) >= 2:
            (ax, ay), (bx, by) = hull[-2], hull[-1]
            if (bx - ax) * (py - ay) - (by - ay) * (px - ax) >= 0:  # b is not above a->p
                hull.pop()
            else:
                break
        hull.append((px, py))
    hx, hy = np.asarray(hull).T
    peak = int(np.argmax(hy))
    # Past the best point, paying more never has to cost quality: keep the peak level.
    return np.append(hx[: peak + 1], x[-1]), np.append(hy[: peak + 1], hy[peak])


def aiq(points: Sequence[PolicyPoint], ref: Reference) -> float:
    """RouterBench's AIQ: area under the non-decreasing convex hull of (cost, quality), divided by
    the always-cheapest..always-top cost range. Units are quality."""
    span = ref.top_cost - ref.cheap_cost
    if span <= 0 or not points:
        return float("nan")
    pts = sorted((p.cost, p.quality) for p in points)
    hx, hy = upper_hull(*(np.asarray(v, dtype=np.float64) for v in zip(*pts, strict=True)))
    return float(np.sum((hx[1:] - hx[:-1]) * (hy[1:] + hy[:-1]) / 2) / span)


def make_curve(name: str, points: Sequence[PolicyPoint], ref: Reference) -> Curve:
    ordered = tuple(sorted(points, key=lambda p: (p.cost, p.quality)))
    return Curve(
        name, ordered, apgr(ordered), cpt(ordered, 0.5), cpt(ordered, 0.8), aiq(ordered, ref)
    )


def sweep(
    name: str,
    probs: FloatArray,
    scores: FloatArray,
    costs: FloatArray,
    ref: Reference,
    max_points: int = MAX_SWEEP_POINTS,
    policy: Policy | None = None,
) -> Curve:
    """`policy` (default: the threshold policy) swept over its knobs on a P(adequate) router's probs,
    always-cheapest to always-top."""
    policy = policy or get_policy(LEGACY_POLICY)
    points = [
        operating_point(name, policy.choose(probs, costs, float(t)), scores, costs, ref, float(t))
        for t in sweep_knobs(policy, probs, costs, max_points)
    ]
    return make_curve(name, points, ref)


def random_curve(router: Curve, scores: FloatArray, costs: FloatArray, ref: Reference) -> Curve:
    """A random router with the same tier mix as each of `router`'s points."""
    points = [mix_point("random", p.calls, scores, costs, ref) for p in router.points]
    return make_curve("random", points, ref)


def length_curve(
    router: Curve, lengths: FloatArray, scores: FloatArray, costs: FloatArray, ref: Reference
) -> Curve:
    """Longest turns to the priciest tiers, at the same tier mix as each of `router`'s points."""
    points = [
        operating_point("length", length_at_mix(lengths, p.calls), scores, costs, ref)
        for p in router.points
    ]
    return make_curve("length", points, ref)


def confusion(pred: IntArray, adequate: FloatArray, tiers: Sequence[Tier]) -> Confusion:
    k = len(tiers)
    has = (adequate == 1.0).any(axis=1)
    truth = np.where(has, oracle_choice(adequate), k)  # k = "none"
    counts = np.zeros((k + 1, k), dtype=np.int64)
    np.add.at(counts, (truth, pred), 1)
    n = max(len(pred), 1)
    return Confusion(
        tuple(t.value for t in tiers) + ("none",),
        tuple(tiers),
        tuple(tuple(int(c) for c in row) for row in counts),
        float((has & (pred == truth)).sum() / n),
        float((has & (pred < truth)).sum() / n),
        float((has & (pred > truth)).sum() / n),
    )


def category_routing(
    pred: IntArray, scores: FloatArray, costs: FloatArray, categories: NDArray[np.str_]
) -> tuple[CategoryRouting, ...]:
    out = []
    rows = np.arange(len(pred))
    for cat in sorted(set(categories.tolist())):
        sel = categories == cat
        top_cost = float(costs[sel, -1].sum())
        out.append(
            CategoryRouting(
                category=cat,
                n=int(sel.sum()),
                calls=tier_mix(pred[sel], scores.shape[1]),
                quality=float(scores[rows[sel], pred[sel]].mean()),
                cost_vs_top=float(costs[rows[sel], pred[sel]].sum()) / top_cost
                if top_cost > 0
                else float("nan"),
                tier_quality=tuple(float(v) for v in scores[sel].mean(axis=0)),
            )
        )
    return tuple(out)


def routing_rows(scores: FloatArray) -> tuple[IntArray, NDArray[np.bool_]] | None:
    """(routing tier columns, complete-row mask), or None with fewer than two tiers to route."""
    cols = np.flatnonzero(~np.isnan(scores).all(axis=0))
    complete = ~np.isnan(scores[:, cols]).any(axis=1)
    if len(cols) < 2 or not complete.any():
        return None
    return cols, complete


def routing_metrics(
    probs: FloatArray,
    scores: FloatArray,
    adequate: FloatArray,
    costs: FloatArray,
    tiers: Sequence[Tier],
    threshold: float,
    lengths: FloatArray | None = None,
    baselines: dict[str, FloatArray] | None = None,
    categories: Sequence[str] | None = None,
    policy: Policy | None = None,
) -> RoutingMetrics | None:
    """Router at `threshold` and its sweep; oracle; always-<tier>; random and (given `lengths`,
    (n,) turn tokens) length heuristic at the mix of each router point; the sweeps of
    `baselines` (name -> (n, k) P(adequate)); the router per category (given `categories`).
    The router and the baselines route with `policy` (default: the threshold policy). Complete rows only
    (see the module doc)."""
    policy = policy or get_policy(LEGACY_POLICY)
    rows = routing_rows(scores)
    if rows is None:
        return None
    cols, complete = rows
    sub = np.ix_(complete, cols)
    s, a, c, p = scores[sub], adequate[sub], costs[sub], probs[sub]
    routing_tiers = tuple(tiers[int(j)] for j in cols)
    ref = reference(s, c)
    router_curve = sweep("router", p, s, c, ref, policy=policy)
    pred = policy.choose(p, c, threshold)
    router = operating_point("router", pred, s, c, ref, threshold)
    n = len(s)
    curves = [router_curve, random_curve(router_curve, s, c, ref)]
    if lengths is not None:
        curves.append(length_curve(router_curve, lengths[complete], s, c, ref))
    curves += [
        sweep(name, b[sub], s, c, ref, policy=policy) for name, b in (baselines or {}).items()
    ]
    return RoutingMetrics(
        tiers=routing_tiers,
        dropped_tiers=tuple(t for j, t in enumerate(tiers) if j not in cols),
        n=n,
        n_incomplete=int((~complete).sum()),
        reference=ref,
        router_threshold=threshold,
        router=router,
        oracle=operating_point("oracle", oracle_choice(a), s, c, ref),
        random_same_mix=mix_point("random", router.calls, s, c, ref),
        always=tuple(
            operating_point(f"always_{t.value}", np.full(n, j, dtype=np.int64), s, c, ref)
            for j, t in enumerate(routing_tiers)
        ),
        curves=tuple(curves),
        confusion=confusion(pred, a, routing_tiers),
        by_category=category_routing(pred, s, c, np.asarray(categories, dtype=str)[complete])
        if categories is not None
        else (),
    )

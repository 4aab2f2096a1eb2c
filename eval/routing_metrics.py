"""Pure: every routing number of the report, from the held-out arrays, the router's and the
peers' P(adequate), and one policy. Arrays in, frozen dataclasses out.

Every method is routed by the same policy with the same believed costs (`policy_costs`: input
tokens plus the predicted answer length per tier), so only the quality estimate differs; every
outcome is priced with the true costs (`costs`: real answer lengths where recorded). Rows and
tiers follow eval.routing (partial labels: each row among its labeled tiers).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from eval.comparison import Method, SubsetResult, compare
from eval.curves import QUALITY_SHARE, Curve, PolicyPoint, Reference, curve_of, make_point
from eval.curves import reference as make_reference
from eval.routing import (
    RoutingSet,
    coin,
    fixed,
    length_at_router_mix,
    oracle,
    random_at_router_mix,
    routing_set,
    sweep,
)
from router.core.policy import Policy, cheapest_adequate
from router.core.tier_mix import tier_mix
from router.core.tiers import Tier

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.integer[Any]]


@dataclass(frozen=True)
class RoutingInputs:
    """Held-out arrays, (n, k) over `tiers` with NaN where unlabeled."""

    scores: FloatArray
    adequate: FloatArray
    costs: FloatArray  # true USD per turn and tier
    policy_costs: FloatArray  # USD the policy believes (predicted answer lengths)
    lengths: FloatArray  # (n,) input tokens, for the length heuristic
    categories: NDArray[np.str_]  # (n,)
    tiers: tuple[Tier, ...]


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
    """The router at its knob within one category, against fixed tiers there."""

    category: str
    n: int
    calls: tuple[float, ...]  # share of the category's turns per routing tier
    quality: float
    cost_vs_top: float  # router cost / always-top cost, within the category
    tier_quality: tuple[float, ...]  # always-<tier> quality (NaN: tier unlabeled there)


@dataclass(frozen=True)
class RoutingMetrics:
    tiers: tuple[Tier, ...]  # tiers routing was scored over
    dropped_tiers: tuple[Tier, ...]  # labeled on no row
    n: int  # rows routed (labeled for the cheapest and the top routing tier)
    n_unrouted: int  # rows left out: the cheapest or top routing tier unlabeled
    n_partial: int  # routed rows lacking a middle tier, routed among the others
    reference: Reference
    policy: str
    router_threshold: float  # the policy's knob the router is shown at
    router: PolicyPoint
    oracle: PolicyPoint  # cheapest adequate tier per turn
    random_same_mix: PolicyPoint
    always: tuple[PolicyPoint, ...]  # tiers labeled on every routed row
    curves: tuple[Curve, ...]  # all routed rows: router, peers, baselines, oracle
    confusion: Confusion
    by_category: tuple[CategoryRouting, ...]
    comparison: tuple[SubsetResult, ...]  # pooled, complete-label and per category
    quality_share: float = QUALITY_SHARE  # the saving's quality target

    def curve(self, name: str) -> Curve | None:
        return next((c for c in self.curves if c.name == name), None)


def oracle_choice(adequate: FloatArray) -> NDArray[np.int64]:
    """The cheapest adequate tier; the cheapest tier when none is adequate (none helps)."""
    ok = adequate == 1.0
    return np.where(ok.any(axis=1), cheapest_adequate(ok), 0).astype(np.int64)


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


def _column_means(x: FloatArray) -> tuple[float, ...]:
    labeled = ~np.isnan(x)
    sums = np.nansum(x, axis=0)
    counts = labeled.sum(axis=0)
    return tuple(float(s / c) if c else float("nan") for s, c in zip(sums, counts, strict=True))


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
                quality=float(np.nan_to_num(scores[rows[sel], pred[sel]]).mean()),
                cost_vs_top=float(costs[rows[sel], pred[sel]].sum()) / top_cost
                if top_cost > 0
                else float("nan"),
                tier_quality=_column_means(scores[sel]),
            )
        )
    return tuple(out)


def _point(name: str, chosen: IntArray, rs: RoutingSet, ref: Reference,
           knob: float | None = None) -> PolicyPoint:  # fmt: skip
    rows = np.arange(rs.n)
    quality = float(np.nan_to_num(rs.scores[rows, chosen]).mean())
    cost = float(rs.costs[rows, chosen].mean())
    return make_point(name, knob, quality, cost, tier_mix(chosen, rs.scores.shape[1]), ref)


def route_methods(
    inputs: RoutingInputs,
    rs: RoutingSet,
    router_probs: FloatArray,
    peer_probs: Mapping[str, FloatArray],
    policy: Policy,
) -> list[Method]:
    """Every method swept on `rs` (routing_set of `inputs`): the router, each peer, the
    baselines at the router's mix, the coin, each fixed tier and the oracle. Probabilities are
    (n, k) over all of inputs' rows and tiers."""

    def sub(a: FloatArray) -> FloatArray:
        return a[np.ix_(rs.rows, rs.cols)]

    tiers = tuple(inputs.tiers[int(j)] for j in rs.cols)
    believed = sub(inputs.policy_costs)
    router = sweep("router", policy, sub(router_probs), believed, rs)
    methods = [Method("router", "router", router)]
    methods += [
        Method(name, "peer", sweep(name, policy, sub(p), believed, rs))
        for name, p in peer_probs.items()
    ]
    methods += [
        Method("random", "baseline", random_at_router_mix(router, rs)),
        Method("length", "baseline", length_at_router_mix(router, inputs.lengths[rs.rows], rs)),
        Method("coin", "baseline", coin(rs)),
    ]
    methods += [
        Method(f"always_{t.value}", "reference", fixed(f"always_{t.value}", j, rs), column=j)
        for j, t in enumerate(tiers)
    ]
    methods.append(Method("oracle", "reference", oracle(rs)))
    return methods


def routing_metrics(
    inputs: RoutingInputs,
    router_probs: FloatArray,
    peer_probs: Mapping[str, FloatArray],
    policy: Policy,
    knob: float,
    n_boot: int = 0,
    seed: int = 0,
    share: float = QUALITY_SHARE,
) -> RoutingMetrics | None:
    """None when no row has labels for two routing tiers."""
    rs = routing_set(inputs.scores, inputs.adequate, inputs.costs)
    if rs is None:
        return None

    def sub(a: FloatArray) -> FloatArray:
        return a[np.ix_(rs.rows, rs.cols)]

    tiers = tuple(inputs.tiers[int(j)] for j in rs.cols)
    believed = sub(inputs.policy_costs)
    methods = route_methods(inputs, rs, router_probs, peer_probs, policy)
    categories = inputs.categories[rs.rows]
    comparison = compare(methods, rs, categories, n_boot, seed, [t.value for t in tiers], share)

    ref = make_reference(np.nan_to_num(rs.scores), rs.costs)
    curves = tuple(curve_of(m.routed, ref, None, share) for m in methods if m.column is None)
    pred = policy.choose(sub(router_probs), believed, knob, rs.available)
    router_point = _point("router", pred, rs, ref, knob)
    labeled = rs.available.all(axis=0)
    return RoutingMetrics(
        tiers=tiers,
        dropped_tiers=tuple(t for j, t in enumerate(inputs.tiers) if j not in rs.cols),
        n=rs.n,
        n_unrouted=int((~rs.rows).sum()),
        n_partial=int((~rs.available.all(axis=1)).sum()),
        reference=ref,
        policy=policy.name,
        router_threshold=knob,
        router=router_point,
        oracle=_point("oracle", oracle_choice(rs.adequate), rs, ref),
        random_same_mix=make_point(
            "random", None, *_expected(rs, router_point.calls), router_point.calls, ref
        ),
        always=tuple(
            _point(f"always_{t.value}", np.full(rs.n, j, dtype=np.int64), rs, ref)
            for j, t in enumerate(tiers)
            if labeled[j]
        ),
        curves=curves,
        confusion=confusion(pred, rs.adequate, tiers),
        by_category=category_routing(pred, rs.scores, rs.costs, categories),
        comparison=comparison,
        quality_share=share,
    )


def _expected(rs: RoutingSet, mix: Sequence[float]) -> tuple[float, float]:
    """Mean (score, cost) when each row goes to tier j with probability mix[j], renormalised
    over the row's labeled tiers."""
    weights = np.asarray(mix, dtype=np.float64)[None, :] * rs.available
    total = weights.sum(axis=1, keepdims=True)
    weights = np.where(total > 0, weights, rs.available)
    weights = weights / weights.sum(axis=1, keepdims=True)
    quality = float((weights * np.nan_to_num(rs.scores)).sum(axis=1).mean())
    return quality, float((weights * rs.costs).sum(axis=1).mean())

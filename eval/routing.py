"""Pure: routing held-out turns under partial labels, and the per-row outcome of every policy
point. Arrays in, frozen dataclasses out.

Each row is routed among the tiers labeled on it (`available`; math-l5 in zeroeval: haiku/opus),
which the policy receives as `allowed`, so every decision has a score. A row takes part when its
cheapest and top routing tiers are labeled (the anchors of PGR and cost share); a tier labeled on
no row is not routed at all. A method's sweep is its policy at each knob plus the two ends:
every row on its cheapest, and on its most capable, available tier.

Routed keeps, per sweep point, each row's quality and cost (expected values for random routing),
so any subset of rows and any bootstrap resample is a weighted mean away (eval.comparison).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from router.core.policy import MAX_KNOBS, Policy, UtilityPolicy
from router.core.tier_mix import length_at_mix

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]
BoolArray = NDArray[np.bool_]


@dataclass(frozen=True)
class RoutingSet:
    """The rows and tiers routing is scored on: scores/costs (n, k) over the routing tiers, NaN
    scores where unlabeled; `cols` maps back to the full tier list."""

    cols: IntArray  # routing tier columns of the full (n_all, k_all) arrays
    rows: BoolArray  # (n_all,) rows that take part
    scores: FloatArray  # (n, k)
    adequate: FloatArray  # (n, k)
    costs: FloatArray  # (n, k) true USD of each tier's answer
    available: BoolArray  # (n, k)

    @property
    def n(self) -> int:
        return len(self.scores)


def routing_set(scores: FloatArray, adequate: FloatArray, costs: FloatArray) -> RoutingSet | None:
    """None with fewer than two routing tiers or no row labeled for both ends."""
    cols = np.flatnonzero(~np.isnan(scores).all(axis=0))
    if len(cols) < 2:
        return None
    sub = scores[:, cols]
    rows = ~np.isnan(sub[:, 0]) & ~np.isnan(sub[:, -1])
    if not rows.any():
        return None
    ix = np.ix_(rows, cols)
    s = scores[ix]
    return RoutingSet(cols, rows, s, adequate[ix], costs[ix], ~np.isnan(s))


def cheapest_available(available: BoolArray) -> IntArray:
    return np.argmax(available, axis=1).astype(np.int64)


def top_available(available: BoolArray) -> IntArray:
    k = available.shape[1]
    return (k - 1 - np.argmax(available[:, ::-1], axis=1)).astype(np.int64)


@dataclass(frozen=True)
class Routed:
    """One method's sweep on a RoutingSet: per point (P) and row (n) the chosen tier's quality
    and true cost, and each point's tier mix. knobs[p] is NaN at the two closing ends."""

    name: str
    knobs: FloatArray  # (P,)
    quality: NDArray[np.float32]  # (P, n)
    cost: NDArray[np.float32]  # (P, n)
    calls: FloatArray  # (P, k) share of rows per tier
    choices: NDArray[np.int8] | None = None  # (P, n), None for expected-value baselines


def outcome(name: str, knobs: FloatArray, choices: IntArray, rs: RoutingSet) -> Routed:
    rows = np.arange(rs.n)[None, :]
    k = rs.scores.shape[1]
    calls = np.stack([(choices == j).mean(axis=1) for j in range(k)], axis=1)
    return Routed(
        name,
        np.asarray(knobs, dtype=np.float64),
        np.nan_to_num(rs.scores[rows, choices]).astype(np.float32),
        rs.costs[rows, choices].astype(np.float32),
        calls,
        choices.astype(np.int8),
    )


def sweep(
    name: str,
    policy: Policy,
    probs: FloatArray,
    policy_costs: FloatArray,
    rs: RoutingSet,
    max_points: int = MAX_KNOBS,
) -> Routed:
    """`policy` at each of its knobs on (n, k) `probs` with the costs it believes, scored with
    the true costs; then all-cheapest and all-top. `probs`/`policy_costs` are on rs's rows and
    tiers."""
    allowed = rs.available
    knobs = np.asarray(policy.knobs(probs, policy_costs, allowed, max_points), dtype=np.float64)
    choices = [policy.choose(probs, policy_costs, float(v), allowed) for v in knobs]
    choices += [cheapest_available(allowed), top_available(allowed)]
    return outcome(name, np.append(knobs, [np.nan, np.nan]), np.stack(choices), rs)


def patterns(available: BoolArray) -> list[IntArray]:
    """Row indices of each distinct availability pattern."""
    return [np.flatnonzero((available == p).all(axis=1)) for p in np.unique(available, axis=0)]


def length_at_router_mix(router: Routed, lengths: FloatArray, rs: RoutingSet) -> Routed:
    """Longest prompts to the priciest tiers, at the router's tier mix of each point, within each
    availability pattern (so every row goes to a tier it has)."""
    assert router.choices is not None
    choices = np.empty_like(router.choices, dtype=np.int64)
    for rows in patterns(rs.available):
        cols = np.flatnonzero(rs.available[rows[0]])
        for p, chosen in enumerate(router.choices[:, rows]):
            mix = [(chosen == c).mean() for c in cols]
            choices[p, rows] = cols[length_at_mix(lengths[rows], mix)]
    return outcome("length", router.knobs, choices, rs)


def random_at_router_mix(router: Routed, rs: RoutingSet) -> Routed:
    """Expected outcome of random routing at the router's tier mix of each point, within each
    availability pattern: row i at point p gets sum_t mix_pt x (score_it, cost_it)."""
    assert router.choices is not None
    k = rs.scores.shape[1]
    quality = np.zeros(router.quality.shape, dtype=np.float64)
    cost = np.zeros_like(quality)
    s = np.nan_to_num(rs.scores)
    for rows in patterns(rs.available):
        mix = np.stack([(router.choices[:, rows] == j).mean(axis=1) for j in range(k)], axis=1)
        quality[:, rows] = mix @ s[rows].T
        cost[:, rows] = mix @ rs.costs[rows].T
    return Routed(
        "random", router.knobs, quality.astype(np.float32), cost.astype(np.float32), router.calls
    )


def coin(rs: RoutingSet, steps: int = 21) -> Routed:
    """Each row to its top tier with probability x, else its cheapest, x from 0 to 1: the
    straight line between the ends (APGR 0.5)."""
    lo, hi = cheapest_available(rs.available), top_available(rs.available)
    rows = np.arange(rs.n)
    s = np.nan_to_num(rs.scores)
    x = np.linspace(0, 1, steps)[:, None]
    quality = (1 - x) * s[rows, lo] + x * s[rows, hi]
    cost = (1 - x) * rs.costs[rows, lo] + x * rs.costs[rows, hi]
    calls = np.zeros((steps, rs.scores.shape[1]))
    calls[:, 0], calls[:, -1] = 1 - x[:, 0], x[:, 0]
    return Routed("coin", x[:, 0], quality.astype(np.float32), cost.astype(np.float32), calls)


def fixed(name: str, column: int, rs: RoutingSet) -> Routed:
    """Every row to one tier (only meaningful on rows where it is labeled)."""
    choices = np.full((1, rs.n), column, dtype=np.int64)
    return outcome(name, np.array([np.nan]), choices, rs)


def oracle(rs: RoutingSet, max_points: int = MAX_KNOBS) -> Routed:
    """The cheapest routing of any kind at each quality: the cost-aware choice with the TRUE
    scores and TRUE costs, swept over the value of quality. Its saving at a quality target
    bounds every method's."""
    truth = np.nan_to_num(rs.scores)
    return sweep("oracle", UtilityPolicy(), truth, rs.costs, rs, max_points)

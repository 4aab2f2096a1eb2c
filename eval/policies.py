"""The policy as eval sweeps it: `choose(probs, costs, knob, allowed)` and
`knobs(probs, costs, allowed, max_points)`, the form router.core.policy's Policy Protocol takes
in issue 8 (`allowed` (n, k) bool: the tiers a row may go to; eval passes the tiers labeled on
the row, so every decision can be scored).

TEMPORARY, until that Protocol is on main: `sweepable` adapts a registered policy that has only
`choose(probs, costs, knob)` (it routes each availability pattern among its own columns and
sweeps thresholds), and UtilityStandIn is the cost-aware policy's math (argmin over allowed
tiers of expected USD + (1 - quality) x V) for development and tests. Once main has them, eval
calls router.core.policy directly and this module goes.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from router.core.policy import Policy

FloatArray = NDArray[np.floating[Any]]
IntArray = NDArray[np.int64]
BoolArray = NDArray[np.bool_]
# A threshold above any probability: every row goes to its most capable allowed tier.
ABOVE_ONE = float(np.nextafter(1.0, 2.0))
# Upper bound on the knob values of one sweep; quantiles of the change points beyond that.
MAX_KNOBS = 400


class SweepPolicy(Protocol):
    name: str

    def choose(
        self, probs: FloatArray, costs: FloatArray, knob: float, allowed: BoolArray | None = None
    ) -> IntArray: ...

    def knobs(
        self,
        probs: FloatArray,
        costs: FloatArray,
        allowed: BoolArray | None = None,
        max_points: int = MAX_KNOBS,
    ) -> FloatArray: ...


def cap(values: FloatArray, max_points: int) -> NDArray[np.float64]:
    """Distinct sorted values, thinned to quantiles when there are more than max_points."""
    v = np.unique(np.asarray(values, dtype=np.float64))
    if len(v) > max_points:
        v = np.unique(np.quantile(v, np.linspace(0, 1, max_points)))
    return v


def full_mask(shape: tuple[int, ...], allowed: BoolArray | None) -> BoolArray:
    return np.ones(shape, dtype=bool) if allowed is None else np.asarray(allowed, dtype=bool)


class PatternAdapter:
    """A policy with only choose(probs, costs, threshold): each distinct `allowed` pattern is
    routed among its own columns; its knobs are thresholds (every distinct allowed probability,
    then ABOVE_ONE)."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.name = policy.name

    def choose(
        self, probs: FloatArray, costs: FloatArray, knob: float, allowed: BoolArray | None = None
    ) -> IntArray:
        mask = full_mask(np.shape(probs), allowed)
        out = np.zeros(len(mask), dtype=np.int64)
        for pattern in np.unique(mask, axis=0):
            rows = np.flatnonzero((mask == pattern).all(axis=1))
            cols = np.flatnonzero(pattern)
            sub = np.ix_(rows, cols)
            out[rows] = cols[self.policy.choose(probs[sub], costs[sub], knob)]
        return out

    def knobs(
        self,
        probs: FloatArray,
        costs: FloatArray,
        allowed: BoolArray | None = None,
        max_points: int = MAX_KNOBS,
    ) -> FloatArray:
        values = np.asarray(probs, dtype=np.float64)[full_mask(np.shape(probs), allowed)]
        return np.append(cap(values, max_points - 1), ABOVE_ONE)


def choose_by_utility(
    probs: FloatArray, costs: FloatArray, value_usd: float, allowed: BoolArray | None = None
) -> IntArray:
    """argmin over allowed columns of costs + (1 - probs) x value_usd; ties to the cheaper
    expected cost, then the cheaper column."""
    q, c = np.asarray(probs, dtype=np.float64), np.asarray(costs, dtype=np.float64)
    total = np.where(full_mask(q.shape, allowed), c + (1.0 - q) * value_usd, np.inf)
    best = total.min(axis=1, keepdims=True)
    tied = total <= best + 1e-15 * np.maximum(1.0, np.abs(best))
    ranked = np.where(tied, c, np.inf)
    return np.argmin(ranked, axis=1).astype(np.int64)


class UtilityStandIn:
    """Stand-in for router.core.policy's cost-aware "utility" policy (issue 8): the knob V is what
    an inadequate answer is worth in USD."""

    name = "utility"

    def choose(
        self, probs: FloatArray, costs: FloatArray, knob: float, allowed: BoolArray | None = None
    ) -> IntArray:
        return choose_by_utility(probs, costs, knob, allowed)

    def knobs(
        self,
        probs: FloatArray,
        costs: FloatArray,
        allowed: BoolArray | None = None,
        max_points: int = MAX_KNOBS,
    ) -> FloatArray:
        q, c = np.asarray(probs, dtype=np.float64), np.asarray(costs, dtype=np.float64)
        mask = full_mask(q.shape, allowed)
        changes = [np.zeros(0)]
        for a in range(q.shape[1]):
            for b in range(a + 1, q.shape[1]):
                both = mask[:, a] & mask[:, b]
                dq, dc = q[both, b] - q[both, a], c[both, b] - c[both, a]
                keep = dq * dc > 0
                changes.append(dc[keep] / dq[keep])
        points = cap(np.concatenate(changes), max_points - 2)
        if len(points) == 0:
            return np.array([0.0, 1.0])
        inside = (points[1:] + points[:-1]) / 2
        return np.concatenate([[0.0], inside, [2.0 * points[-1] + 1.0]])


def sweepable(policy: Policy | SweepPolicy) -> SweepPolicy:
    """The policy itself when it already takes `allowed` and has `knobs`, else PatternAdapter."""
    if hasattr(policy, "knobs"):
        return policy  # type: ignore[return-value]
    return PatternAdapter(policy)  # type: ignore[arg-type]

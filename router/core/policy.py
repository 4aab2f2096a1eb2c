"""THE routing policy: per-tier quality and per-tier expected cost -> a tier. Every policy has
three forms that agree: `decide` for one request, with the reason (serving), `choose` over (n, k)
arrays (training's curve, eval, replays) and `knobs`, the knob values at which its choices change
(the sweeps behind every curve).

Registered in POLICIES and looked up with get_policy:

- "utility" (the default for new bundles): the allowed tier minimising
  `expected_usd_t + (1 - q_t) x V`, where q_t is the tier's predicted quality (P(adequate)) and
  V, the knob, is what an inadequate answer is worth in USD (the agent path's failed_turn_usd).
  A tier is chosen only when its extra expected quality is worth its extra dollars: a prompt no
  tier is likely to solve goes cheap (little gain), and a tier off the turn's efficient frontier
  is never chosen. Equivalent to `q - lambda * c / c_top` with V = c_top / lambda.
- "threshold": the tier with the lowest expected cost among those with P(adequate) >= the knob,
  else the most capable allowed tier. With costs rising by tier (no prompt cache, one answer
  length) that is "the cheapest tier with P(adequate) >= threshold", bundles' old policy.

Both are one function, choose_by_utility (the threshold policy with V = its risk_usd over the
tiers that reach the threshold). Ties go to the lower expected cost, then to the cheaper tier.
Tier columns are cheapest first (TIER_ORDER); costs are USD per turn (router.core.economics).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, NamedTuple, Protocol

import numpy as np
from numpy.typing import NDArray

from router.core.manifest import CurvePoint
from router.core.tiers import TIER_ORDER, Tier
from router.errors import BadRequestError

FloatArray = NDArray[np.floating[Any]]
IntArray = NDArray[np.int64]
BoolArray = NDArray[np.bool_]
# A threshold above any probability: every turn goes to the most capable tier.
ABOVE_ONE = float(np.nextafter(1.0, 2.0))
# Upper bound on the knob values a sweep returns; quantiles of the change points beyond that.
MAX_KNOBS = 400


@dataclass(frozen=True)
class PolicyDecision:
    tier: Tier
    knob: float
    reason: str
    # Agent-aware decisions only: each tier's dollars for the turn (router.core.economics).
    cost_breakdown: dict[str, Any] | None = None
    off_frontier: tuple[Tier, ...] = ()
    # The per-tier USD the policy weighed (RouteDecision.expected_cost_usd).
    costs: dict[Tier, float] | None = None
    # The tiers it chose among, cheapest first: those reaching the threshold (else the most
    # capable allowed), or the turn's efficient frontier (utility).
    choosable: tuple[Tier, ...] = ()
    # USD it put on an inadequate answer to this turn: V x m (utility), risk_usd (threshold).
    value_usd: float | None = None


ByTier = Mapping[Tier, float]


class Bounds(NamedTuple):
    """A request's min_tier/max_tier: the policy chooses within them (None: unbounded)."""

    min_tier: Tier | None = None
    max_tier: Tier | None = None


UNBOUNDED = Bounds()


class Policy(Protocol):
    name: str
    # What the knob is, as a request field: "threshold" or "failed_turn_usd".
    knob_name: str

    def decide(
        self, probs: ByTier, costs: ByTier, knob: float, bounds: Bounds = UNBOUNDED
    ) -> PolicyDecision:
        """One turn: the tier within `bounds` and why. Every tier has a quality and a cost."""
        ...

    def choose(
        self, probs: FloatArray, costs: FloatArray, knob: float, allowed: BoolArray | None = None
    ) -> IntArray:
        """(n, k) quality and (n, k) USD, columns cheapest first -> (n,) column indices, each
        among the row's `allowed` columns (default all). Row i equals decide() on row i."""
        ...

    def knobs(
        self,
        probs: FloatArray,
        costs: FloatArray,
        allowed: BoolArray | None = None,
        max_points: int = MAX_KNOBS,
    ) -> FloatArray:
        """Ascending knob values, one inside each interval over which every row's choice stays
        the same (at most max_points): choose() at each gives every distinct set of decisions,
        from the cheapest to the most quality. Higher knob, more quality."""
        ...


def allowed_tiers(min_tier: Tier | None, max_tier: Tier | None) -> list[Tier]:
    lo = min_tier.rank if min_tier else 0
    hi = max_tier.rank if max_tier else len(TIER_ORDER) - 1
    return list(TIER_ORDER[lo : hi + 1])


def _bounds_note(tier: Tier, bounds: Bounds) -> str:
    if bounds.min_tier is not None and tier == bounds.min_tier:
        return f" (min_tier={tier.value})"
    if bounds.max_tier is not None and tier == bounds.max_tier:
        return f" (max_tier={tier.value})"
    return ""


def most_capable(allowed: Sequence[Tier], threshold: float, bounds: Bounds) -> PolicyDecision:
    """When no allowed tier reaches the threshold: the most capable allowed one, because
    under-routing costs quality, which is what the caller asked us to protect."""
    top = allowed[-1]
    cap = f" (max_tier={bounds.max_tier.value})" if bounds.max_tier else ""
    return PolicyDecision(
        top,
        threshold,
        f"no allowed tier reached P(adequate) >= {threshold:.3f}; "
        f"using the most capable allowed tier {top.value}{cap}",
    )


def choose_by_utility(
    probs: FloatArray,
    costs: FloatArray,
    value_usd: float | FloatArray,
    allowed: BoolArray | None = None,
) -> IntArray:
    """(n,) argmin over each row's allowed columns of costs + (1 - probs) x value_usd (a
    scalar, or (n, 1) per row); ties go to the lower cost, then the lower column. Every row
    needs an allowed column."""
    q = np.asarray(probs, dtype=np.float64)
    c = np.asarray(costs, dtype=np.float64)
    utility = c + (1.0 - q) * value_usd
    if allowed is not None:
        utility = np.where(allowed, utility, np.inf)
    tied = utility == utility.min(axis=1, keepdims=True)
    if allowed is not None:
        tied &= allowed
    out: IntArray = np.where(tied, c, np.inf).argmin(axis=1).astype(np.int64)
    return out


def _utility_pick(candidates: Sequence[Tier], probs: ByTier, costs: ByTier, value: float) -> Tier:
    """choose_by_utility for one request (the same float arithmetic, the same ties)."""
    return min(candidates, key=lambda t: (costs[t] + (1.0 - probs[t]) * value, costs[t], t.rank))


def _money(usd: float) -> str:
    return f"${usd:.4f}"


def _allowed_mask(shape: tuple[int, ...], allowed: BoolArray | None) -> BoolArray:
    return np.ones(shape, dtype=bool) if allowed is None else np.asarray(allowed, dtype=bool)


def _cap(values: FloatArray, max_points: int) -> FloatArray:
    values = np.unique(values)
    if len(values) > max_points:
        values = np.unique(np.quantile(values, np.linspace(0.0, 1.0, max_points)))
    return values


class ThresholdPolicy:
    """The lowest expected cost (+ (1 - P) x risk_usd) among tiers with P(adequate) >= the
    knob, else the most capable allowed tier. The registered instance has risk_usd 0; the agent
    path adds the failed-turn value to it, as its cost model always did."""

    name = "threshold"
    knob_name = "threshold"

    def __init__(self, risk_usd: float = 0.0) -> None:
        self.risk_usd = risk_usd

    def decide(
        self, probs: ByTier, costs: ByTier, knob: float, bounds: Bounds = UNBOUNDED
    ) -> PolicyDecision:
        allowed = allowed_tiers(*bounds)
        candidates = [t for t in allowed if probs[t] >= knob]
        if not candidates:
            fallback = most_capable(allowed, knob, bounds)
            return replace(
                fallback,
                costs=dict(costs),
                choosable=(fallback.tier,),
                value_usd=self.risk_usd,
            )
        tier = _utility_pick(candidates, probs, costs, self.risk_usd)
        skipped = [t.value for t in allowed if t.rank < tier.rank]
        if tier == candidates[0]:
            why = f"; cheaper {skipped} below threshold" if skipped else ""
            head = f"{tier.value} is the cheapest tier with P(adequate)={probs[tier]:.3f}"
        else:
            why = f"; cheaper {skipped} cost more or are below threshold"
            head = (
                f"{tier.value} has the lowest expected cost ({_money(costs[tier])}) among "
                f"tiers with P(adequate)={probs[tier]:.3f}"
            )
        reason = f"{head} >= {knob:.3f}{why}{_bounds_note(tier, bounds)}"
        return PolicyDecision(
            tier,
            knob,
            reason,
            costs=dict(costs),
            choosable=tuple(candidates),
            value_usd=self.risk_usd,
        )

    def choose(
        self, probs: FloatArray, costs: FloatArray, knob: float, allowed: BoolArray | None = None
    ) -> IntArray:
        q = np.asarray(probs, dtype=np.float64)
        mask = _allowed_mask(q.shape, allowed)
        ok = mask & (q >= knob)
        top = np.zeros_like(mask)
        top[np.arange(len(q)), q.shape[1] - 1 - np.argmax(mask[:, ::-1], axis=1)] = True
        candidates = np.where(ok.any(axis=1, keepdims=True), ok, top)
        return choose_by_utility(q, costs, self.risk_usd, candidates)

    def knobs(
        self,
        probs: FloatArray,
        costs: FloatArray,
        allowed: BoolArray | None = None,
        max_points: int = MAX_KNOBS,
    ) -> FloatArray:
        q = np.asarray(probs, dtype=np.float64)
        values = q[_allowed_mask(q.shape, allowed)]
        return np.append(_cap(values, max_points - 1), ABOVE_ONE)


def frontier(candidates: Sequence[Tier], probs: ByTier, costs: ByTier) -> list[Tier]:
    """The candidates some V >= 0 makes the utility choice, cheapest first: the turn's
    efficient frontier of (expected cost, expected quality)."""
    changes = sorted(
        {
            (costs[b] - costs[a]) / (probs[b] - probs[a])
            for a in candidates
            for b in candidates
            if (probs[b] - probs[a]) > 0 and (costs[b] - costs[a]) > 0
        }
    )
    values = [0.0, *((x + y) / 2 for x, y in zip(changes, changes[1:], strict=False))]
    values.append(2.0 * changes[-1] + 1.0 if changes else 1.0)
    chosen = {_utility_pick(candidates, probs, costs, v) for v in values}
    return sorted(chosen, key=lambda t: (costs[t], t.rank))


class UtilityPolicy:
    """argmin over allowed tiers of expected USD + (1 - quality) x V x m; the knob V is in USD.

    m, the turn's size, is 1 for a turn whose dearest tier costs at most `reference_usd` (the
    bundle's typical training turn, manifest.reference_cost_usd) and that ratio above it: an
    inadequate answer to a 50k-token agent turn loses more than one to a short question (more
    work rides on it, and redoing it costs more), so a fixed V would sell any quality for a
    long turn's dollars. Without a reference (the registered instance) m is 1."""

    name = "utility"
    knob_name = "failed_turn_usd"

    def __init__(self, reference_usd: float | None = None) -> None:
        self.reference_usd = reference_usd

    def size(self, dearest_usd: float) -> float:
        """m of a turn whose dearest tier costs dearest_usd."""
        if not self.reference_usd:
            return 1.0
        return max(1.0, dearest_usd / self.reference_usd)

    def _weighed(self, costs: FloatArray) -> FloatArray:
        """Costs / m per row: the same argmin as cost + (1 - q) x V x m."""
        c = np.asarray(costs, dtype=np.float64)
        if not self.reference_usd:
            return c
        out: FloatArray = c / np.maximum(1.0, c.max(axis=1) / self.reference_usd)[:, None]
        return out

    def decide(
        self, probs: ByTier, costs: ByTier, knob: float, bounds: Bounds = UNBOUNDED
    ) -> PolicyDecision:
        allowed = allowed_tiers(*bounds)
        size = self.size(max(costs.values()))
        weighed = {t: c / size for t, c in costs.items()}
        tier = _utility_pick(allowed, probs, weighed, knob)
        front = frontier(allowed, probs, weighed)
        if tier not in front:  # a tie exactly at a change point
            front = sorted({*front, tier}, key=lambda t: (costs[t], t.rank))
        off = tuple(t for t in allowed if t not in front)
        at = front.index(tier)
        below = front[at - 1] if at > 0 else None
        above = front[at + 1] if at + 1 < len(front) else None

        def step(a: Tier, b: Tier) -> str:
            return f"+{probs[b] - probs[a]:.2f} expected quality for +{_money(costs[b] - costs[a])}"

        if below is not None:
            head = f"{tier.value}: {step(below, tier)} over {below.value}"
        elif len(allowed) == 1:
            head = f"{tier.value}: the only allowed tier"
        else:
            head = f"{tier.value}: the cheapest choice ({_money(costs[tier])})"
        value = f"an inadequate answer is valued at ${knob * size:.3g}"
        if size > 1:
            value += f" (${knob:.3g} x {size:.1f}: this turn costs {size:.1f}x a typical one)"
        parts = [head, value]
        if above is not None:
            gain = probs[above] - probs[tier]
            worth = _money(gain * knob * size)
            parts.append(f"{above.value} would add {step(tier, above)}, worth {worth}")
        if off:
            names = ", ".join(t.value for t in off)
            parts.append(f"off the efficient frontier: {names}")
        reason = "; ".join(parts) + _bounds_note(tier, bounds)
        return PolicyDecision(
            tier,
            knob,
            reason,
            off_frontier=off,
            costs=dict(costs),
            choosable=tuple(front),
            value_usd=knob * size,
        )

    def choose(
        self, probs: FloatArray, costs: FloatArray, knob: float, allowed: BoolArray | None = None
    ) -> IntArray:
        return choose_by_utility(probs, self._weighed(costs), knob, allowed)

    def knobs(
        self,
        probs: FloatArray,
        costs: FloatArray,
        allowed: BoolArray | None = None,
        max_points: int = MAX_KNOBS,
    ) -> FloatArray:
        q = np.asarray(probs, dtype=np.float64)
        c = self._weighed(costs)
        mask = _allowed_mask(q.shape, allowed)
        changes = []
        for a in range(q.shape[1]):
            for b in range(a + 1, q.shape[1]):
                dq, dc = q[:, b] - q[:, a], c[:, b] - c[:, a]
                # One is better and pricier: V = dc/dq is where they trade places; it changes
                # the row's choice only when both are on its frontier.
                trade = mask[:, a] & mask[:, b] & (dq * dc > 0)
                value = np.where(trade, dc / np.where(trade, dq, 1.0), 0.0)[:, None]
                below = choose_by_utility(q, c, value * (1 - 1e-9), mask)
                above = choose_by_utility(q, c, value * (1 + 1e-9), mask)
                changes.append(value[trade & (below != above), 0])
        points = _cap(np.concatenate(changes), max_points - 2) if changes else np.array([])
        if len(points) == 0:  # no trade-off anywhere: V = 0 (cost ties) and any V > 0
            return np.array([0.0, 1.0])
        inside = (points[1:] + points[:-1]) / 2
        return np.concatenate([[0.0], inside, [2.0 * points[-1] + 1.0]])


POLICIES: dict[str, Policy] = {p.name: p for p in (UtilityPolicy(), ThresholdPolicy())}
# New bundles are trained for it (manifest.policy); a manifest without one is a threshold bundle.
DEFAULT_POLICY = "utility"
LEGACY_POLICY = "threshold"


def bundle_policy(name: str, reference_usd: float | None) -> Policy:
    """Policy `name` as a bundle applies it: the utility policy with the bundle's reference
    turn cost (manifest.reference_cost_usd), any other the registered one."""
    if name == UtilityPolicy.name:
        return UtilityPolicy(reference_usd)
    return get_policy(name)


def get_policy(name: str = DEFAULT_POLICY) -> Policy:
    try:
        return POLICIES[name]
    except KeyError:
        raise BadRequestError(
            f"policy: unknown policy {name!r}; expected one of {sorted(POLICIES)}"
        ) from None


def choose_tier(
    probs: ByTier, threshold: float, min_tier: Tier | None = None, max_tier: Tier | None = None
) -> PolicyDecision:
    """The threshold policy without costs: the cheapest tier (by rank) with P >= threshold."""
    ranks = {t: float(t.rank) for t in TIER_ORDER}
    return ThresholdPolicy().decide(probs, ranks, threshold, Bounds(min_tier, max_tier))


def cheapest_adequate(adequate: BoolArray) -> IntArray:
    """(n,) index of the first adequate column per row; the last (top) column when none is."""
    adequate = np.asarray(adequate, dtype=bool)
    top = adequate.shape[1] - 1
    first = np.argmax(adequate, axis=1)
    out: IntArray = np.where(adequate.any(axis=1), first, top).astype(np.int64)
    return out


@dataclass(frozen=True)
class OperatingPoint:
    """A policy and its knob: what one request is routed with."""

    policy: Policy
    knob: float


def cheapest_reaching(curve: Sequence[CurvePoint], target: float) -> CurvePoint | None:
    """The cheapest point (then lowest knob) whose quality reaches `target`; None if none."""
    reachable = [p for p in curve if p.quality >= target]
    return min(reachable, key=lambda p: (p.cost, p.knob)) if reachable else None


def pick_point(curve: Sequence[CurvePoint], target: float) -> CurvePoint:
    """cheapest_reaching, else the best-quality point (training's default knob)."""
    point = cheapest_reaching(curve, target)
    return point if point is not None else max(curve, key=lambda p: (p.quality, -p.cost))


def knob_for_quality(target: float, curve: Sequence[CurvePoint]) -> float:
    """The knob of cheapest_reaching (serving's quality_target). Raises BadRequestError when
    no operating point reaches it, naming the best reachable value."""
    point = cheapest_reaching(curve, target)
    if point is None:
        best = max((p.quality for p in curve), default=0.0)
        raise BadRequestError(
            f"quality_target {target!r} is above what this model reached on held-out data "
            f"({best:.3f}); use a value <= {best:.3f} or pass max_tier/min_tier"
        )
    return point.knob

"""THE routing policy: per-tier P(adequate) and per-tier cost -> a tier. Two forms that agree row
for row: `decide` for one request, with the reason (serving), and `choose` over (n, k) held-out
arrays (training's operating curve, eval's curves and replays).

Policies are registered by name in POLICIES; serving, training and eval look one up with
get_policy. Registered today: "threshold", the cheapest allowed tier with P(adequate) >= threshold,
else the most capable allowed tier (under-routing costs quality, which the caller asked to keep).
Tier columns are cheapest first (TIER_ORDER); costs are USD per turn (router.core.economics).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

import numpy as np
from numpy.typing import NDArray

from router.core.manifest import CurvePoint
from router.core.tiers import TIER_ORDER, Tier
from router.errors import BadRequestError

FloatArray = NDArray[np.floating[Any]]
IntArray = NDArray[np.int64]
BoolArray = NDArray[np.bool_]


@dataclass(frozen=True)
class PolicyDecision:
    tier: Tier
    threshold: float
    reason: str
    # Agent-aware decisions only: each tier's dollars for the turn (router.core.economics).
    cost_breakdown: dict[str, Any] | None = None


ByTier = Mapping[Tier, float]


class Bounds(NamedTuple):
    """A request's min_tier/max_tier: the policy chooses within them (None: unbounded)."""

    min_tier: Tier | None = None
    max_tier: Tier | None = None


UNBOUNDED = Bounds()


class Policy(Protocol):
    name: str

    def decide(
        self, probs: ByTier, costs: ByTier, threshold: float, bounds: Bounds = UNBOUNDED
    ) -> PolicyDecision:
        """One turn: the tier within `bounds` and why. Every tier has a P(adequate) and a cost."""
        ...

    def choose(self, probs: FloatArray, costs: FloatArray, threshold: float) -> IntArray:
        """(n, k) P(adequate) and (n, k) USD, columns cheapest first -> (n,) column indices.
        Unbounded: row i equals decide() on row i without min_tier/max_tier."""
        ...


def allowed_tiers(min_tier: Tier | None, max_tier: Tier | None) -> list[Tier]:
    lo = min_tier.rank if min_tier else 0
    hi = max_tier.rank if max_tier else len(TIER_ORDER) - 1
    return list(TIER_ORDER[lo : hi + 1])


def most_capable(
    allowed: Sequence[Tier], threshold: float, max_tier: Tier | None = None
) -> PolicyDecision:
    """When no allowed tier reaches the threshold: the most capable allowed one, because
    under-routing costs quality, which is what the caller asked us to protect."""
    top = allowed[-1]
    cap = f" (max_tier={max_tier.value})" if max_tier else ""
    return PolicyDecision(
        top,
        threshold,
        f"no allowed tier reached P(adequate) >= {threshold:.3f}; "
        f"using the most capable allowed tier {top.value}{cap}",
    )


def choose_tier(
    probs: ByTier,
    threshold: float,
    min_tier: Tier | None = None,
    max_tier: Tier | None = None,
) -> PolicyDecision:
    """Cheapest tier within [min_tier, max_tier] with P(adequate) >= threshold, else most_capable."""
    candidates = allowed_tiers(min_tier, max_tier)
    for i, tier in enumerate(candidates):
        if probs[tier] >= threshold:
            skipped = [t.value for t in candidates[:i]]
            why = f"; cheaper {skipped} below threshold" if skipped else ""
            clamp = f" (min_tier={min_tier.value})" if min_tier and tier == min_tier else ""
            return PolicyDecision(
                tier,
                threshold,
                f"{tier.value} is the cheapest tier with P(adequate)={probs[tier]:.3f} "
                f">= {threshold:.3f}{why}{clamp}",
            )
    return most_capable(candidates, threshold, max_tier)


def cheapest_adequate(adequate: BoolArray) -> IntArray:
    """(n,) index of the first adequate column per row; the last (top) column when none is."""
    adequate = np.asarray(adequate, dtype=bool)
    top = adequate.shape[1] - 1
    first = np.argmax(adequate, axis=1)
    out: IntArray = np.where(adequate.any(axis=1), first, top).astype(np.int64)
    return out


class ThresholdPolicy:
    """The cheapest tier with P(adequate) >= threshold, else the most capable; costs unused."""

    name = "threshold"

    def decide(
        self, probs: ByTier, costs: ByTier, threshold: float, bounds: Bounds = UNBOUNDED
    ) -> PolicyDecision:
        return choose_tier(probs, threshold, *bounds)

    def choose(self, probs: FloatArray, costs: FloatArray, threshold: float) -> IntArray:
        return cheapest_adequate(np.asarray(probs) >= threshold)


POLICIES: dict[str, Policy] = {p.name: p for p in (ThresholdPolicy(),)}
DEFAULT_POLICY = "threshold"


def get_policy(name: str = DEFAULT_POLICY) -> Policy:
    try:
        return POLICIES[name]
    except KeyError:
        raise BadRequestError(
            f"policy: unknown policy {name!r}; expected one of {sorted(POLICIES)}"
        ) from None


def cheapest_reaching(curve: Sequence[CurvePoint], target: float) -> CurvePoint | None:
    """The cheapest point (then lowest threshold) whose quality reaches `target`; None if none."""
    reachable = [p for p in curve if p.quality >= target]
    return min(reachable, key=lambda p: (p.cost, p.threshold)) if reachable else None


def pick_point(curve: Sequence[CurvePoint], target: float) -> CurvePoint:
    """cheapest_reaching, else the best-quality point (training's default threshold)."""
    point = cheapest_reaching(curve, target)
    return point if point is not None else max(curve, key=lambda p: (p.quality, -p.cost))


def threshold_for_quality(target: float, curve: Sequence[CurvePoint]) -> float:
    """The threshold of cheapest_reaching (serving's quality_target). Raises BadRequestError
    when no operating point reaches it, naming the best reachable value."""
    point = cheapest_reaching(curve, target)
    if point is None:
        best = max((p.quality for p in curve), default=0.0)
        raise BadRequestError(
            f"quality_target {target!r} is above what this model reached on held-out data "
            f"({best:.3f}); use a value <= {best:.3f} or pass max_tier/min_tier"
        )
    return point.threshold

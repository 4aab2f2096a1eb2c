"""Pure routing policy: per-tier P(adequate) + threshold -> the cheapest adequate tier and why."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from router.core.tiers import TIER_ORDER, Tier
from router.errors import BadRequestError


@dataclass(frozen=True)
class CurvePoint:
    """One held-out operating point: at `threshold`, the router kept `quality` (share of
    always-top quality) at `cost` (share of always-top cost)."""

    threshold: float
    quality: float
    cost: float


@dataclass(frozen=True)
class PolicyDecision:
    tier: Tier
    threshold: float
    reason: str
    # Agent-aware decisions only: each tier's dollars for the turn (router.core.economics).
    cost_breakdown: dict[str, Any] | None = None


def allowed_tiers(min_tier: Tier | None, max_tier: Tier | None) -> list[Tier]:
    lo = min_tier.rank if min_tier else 0
    hi = max_tier.rank if max_tier else len(TIER_ORDER) - 1
    return list(TIER_ORDER[lo : hi + 1])


def threshold_for_quality(target: float, curve: Sequence[CurvePoint]) -> float:
    """The lowest threshold (cheapest) whose held-out quality reaches `target`.

    Raises BadRequestError when no operating point reaches it, naming the best reachable value.
    """
    reachable = [p for p in curve if p.quality >= target]
    if not reachable:
        best = max((p.quality for p in curve), default=0.0)
        raise BadRequestError(
            f"quality_target {target!r} is above what this model reached on held-out data "
            f"({best:.3f}); use a value <= {best:.3f} or pass max_tier/min_tier"
        )
    return min(reachable, key=lambda p: (p.cost, p.threshold)).threshold


def choose_tier(
    probs: Mapping[Tier, float],
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

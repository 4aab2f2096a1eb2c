"""The quality a loop head commits: in an agent session the tier chosen at a head (a turn that
answers no pending tool_use) serves the whole tool loop that follows, pinned. The router cannot
score turns that do not exist yet, but it has scored the session's earlier loop turns, which are
like the coming ones (tool results, not a user's prompt). So a head is weighed by the mean
P(adequate) per tier over those loop turns and the head itself; with no loop turn seen yet, by
the head alone (the plain estimate). Pure: per-tier sums in, per-tier quality out."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from router.core.tiers import TIER_ORDER, Tier


@dataclass(frozen=True)
class LoopQuality:
    """Running per-tier sums of P(adequate) over a session's pinned loop turns (TIER_ORDER)."""

    turns: int = 0
    sums: tuple[float, ...] = ()

    def add(self, probs: Mapping[Tier, float]) -> LoopQuality:
        """With one more loop turn scored `probs`."""
        old = self.sums or (0.0,) * len(TIER_ORDER)
        return LoopQuality(
            self.turns + 1, tuple(s + probs[t] for s, t in zip(old, TIER_ORDER, strict=True))
        )

    def at_head(self, probs: Mapping[Tier, float]) -> dict[Tier, float]:
        """Per tier, the expected quality of the loop a head with `probs` commits: the mean over
        the loop turns seen and the head; the head's own `probs` when none was seen."""
        if self.turns <= 0 or len(self.sums) != len(TIER_ORDER):
            return dict(probs)
        n = self.turns + 1
        return {t: (s + probs[t]) / n for s, t in zip(self.sums, TIER_ORDER, strict=True)}

"""The tiers, cheapest first. Claude model ids and prices live in tiers.toml / Settings."""

from __future__ import annotations

from enum import StrEnum

from router.errors import UnknownTierError


class Tier(StrEnum):
    HAIKU = "haiku"
    SONNET = "sonnet"
    OPUS = "opus"

    @property
    def rank(self) -> int:
        """0 for the cheapest tier; ordering follows TIER_ORDER."""
        return TIER_ORDER.index(self)


# Cheapest first: the policy walks this order and stops at the first adequate tier.
TIER_ORDER: tuple[Tier, ...] = (Tier.HAIKU, Tier.SONNET, Tier.OPUS)


def parse_tier(value: str, field: str = "tier") -> Tier:
    """Parse a tier name (case-insensitive); the error names the field, value and choices."""
    try:
        return Tier(value.strip().lower())
    except (ValueError, AttributeError):
        raise UnknownTierError(
            f"{field}: unknown tier {value!r}; expected one of {[t.value for t in Tier]}"
        ) from None

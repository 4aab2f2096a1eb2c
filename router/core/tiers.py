"""The tiers, cheapest first, and what each one costs: Tier, TierSpec (model id and list prices)
and PricingSpec (cache and batch multipliers). The values live in tiers.toml / Settings."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

from pydantic import BaseModel, Field

from router.errors import UnknownTierError

# Tier -> Claude model id and list prices; Settings reads it (ROUTER_TIERS_FILE overrides).
DEFAULT_TIERS_FILE = Path(__file__).with_name("tiers.toml")


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


class TierSpec(BaseModel):
    """One tier's Claude model id and list prices in USD per million tokens."""

    model: str = Field(min_length=1)
    input_per_mtok: float = Field(ge=0)
    output_per_mtok: float = Field(ge=0)


class PricingSpec(BaseModel):
    """Multipliers on a tier's input price (cache) or on every price (Message Batches API)."""

    cache_write_multiplier: float = Field(ge=0)
    cache_read_multiplier: float = Field(ge=0)
    batch_multiplier: float = Field(ge=0)
    # Anthropic's list multiplier for a 1-hour (ttl "1h") cache write; 5-minute writes use
    # cache_write_multiplier.
    cache_write_1h_multiplier: float = Field(default=2.0, ge=0)
    # Model id -> minimum cacheable prompt length (tokens); see tiers.toml and
    # router.core.economics.min_cacheable_tokens.
    min_cacheable_tokens: dict[str, int] = Field(default_factory=dict)

"""Cache rules in the shared economics: 1-hour writes at 2x, per-model minimum cacheable prompt.
Expected dollars are computed here by hand from the price table below, not from tiers.toml."""

import math

import pytest

from router.core.economics import (
    DEFAULT_MIN_CACHEABLE_TOKENS,
    cache_writes,
    min_cacheable_tokens,
    usage_cost_usd,
)
from router.core.schemas import Usage
from router.core.tiers import PricingSpec, TierSpec
from router.settings import Settings

SPEC = TierSpec(model="claude-x", input_per_mtok=4.0, output_per_mtok=20.0)
PRICING = PricingSpec(
    cache_write_multiplier=1.25,
    cache_read_multiplier=0.1,
    batch_multiplier=0.5,
    cache_write_1h_multiplier=2.0,
    min_cacheable_tokens={"claude-big": 4096, "claude-big-1": 2048, "claude-small": 1024},
)


def test_one_hour_writes_cost_2x_and_five_minute_writes_1_25x() -> None:
    usage = Usage.model_validate(
        {
            "input_tokens": 10,
            "output_tokens": 100,
            "cache_read_input_tokens": 1000,
            "cache_creation_input_tokens": 3000,
            "cache_creation": {
                "ephemeral_5m_input_tokens": 1000,
                "ephemeral_1h_input_tokens": 2000,
            },
        }
    )
    assert cache_writes(usage) == (1000, 2000)
    want = (10 * 4 + 1000 * 4 * 0.1 + 1000 * 4 * 1.25 + 2000 * 4 * 2.0 + 100 * 20) / 1e6
    assert math.isclose(usage_cost_usd(usage, SPEC, PRICING), want)


def test_writes_without_a_breakdown_are_five_minute_ones() -> None:
    usage = Usage(input_tokens=0, output_tokens=0, cache_creation_input_tokens=800)
    assert cache_writes(usage) == (800, 0)
    assert math.isclose(usage_cost_usd(usage, SPEC, PRICING), 800 * 4 * 1.25 / 1e6)


@pytest.mark.parametrize(
    ("model", "want"),
    [
        ("claude-big", 4096),
        ("claude-big-20260101", 4096),
        ("claude-big-1", 2048),  # the longer configured id wins
        ("claude-big-1-20260101", 2048),
        ("claude-small", 1024),
        ("claude-unknown", DEFAULT_MIN_CACHEABLE_TOKENS),
    ],
)
def test_min_cacheable_tokens_per_model(model: str, want: int) -> None:
    assert min_cacheable_tokens(model, PRICING) == want


def test_shipped_minimums_match_anthropic_docs() -> None:
    """tiers.toml: Opus 4.6 and Haiku 4.5 need 4096 tokens, Sonnet 4.5 1024 (Anthropic's
    prompt-caching docs); 1-hour writes cost 2x."""
    prices = Settings().prices
    assert prices.cache_write_1h_multiplier == 2.0
    assert min_cacheable_tokens("claude-opus-4-6", prices) == 4096
    assert min_cacheable_tokens("claude-haiku-4-5-20251001", prices) == 4096
    assert min_cacheable_tokens("claude-sonnet-4-5-20250929", prices) == 1024

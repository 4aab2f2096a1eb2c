"""Turn economics from first principles: every expected dollar amount is computed here from the
price table below (deliberately not tiers.toml), never copied from the code under test."""

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from router.core.economics import (
    TurnShape,
    billing_tier,
    choose_by_cost,
    expected_output_tokens,
    prefix_from_usage,
    price_tiers,
    tier_for_model,
    usage_cost_usd,
)
from router.core.schemas import Usage
from router.core.tiers import PricingSpec, Tier, TierSpec

H, S, O = Tier.HAIKU, Tier.SONNET, Tier.OPUS
# USD per million tokens: (input, output). Not the list prices, so nothing can be read from config.
PRICE = {H: (0.8, 4.0), S: (3.0, 15.0), O: (15.0, 75.0)}
READ, WRITE = 0.1, 1.25
SPECS = {
    t: TierSpec(model=f"claude-{t.value}-x", input_per_mtok=i, output_per_mtok=o)
    for t, (i, o) in PRICE.items()
}
PRICING = PricingSpec(
    cache_write_multiplier=WRITE, cache_read_multiplier=READ, batch_multiplier=0.5
)


def by_hand(
    tier: Tier, p: float, prompt: int, prefix: int, holder: Tier | None, out: int, fail: float
) -> float:
    """Expected dollars of one turn: prefix read (holder) or written (others), rest fresh,
    output, plus (1 - p) x the value of a failed turn."""
    inp, outp = PRICE[tier]
    mult = 0.0 if prefix == 0 else (READ if tier == holder else WRITE)
    return (prefix * inp * mult + (prompt - prefix) * inp + out * outp) / 1e6 + (1 - p) * fail


def shape(
    prompt: int, prefix: int, holder: Tier | None, out: int = 500, fail: float = 0.1
) -> TurnShape:
    return TurnShape(prompt, prefix, holder, out, fail)


def test_staying_reads_the_prefix_and_switching_rewrites_it() -> None:
    probs = {H: 0.9, S: 0.95, O: 0.97}
    turn = shape(prompt=60_000, prefix=50_000, holder=O)
    costs = price_tiers(probs, turn, SPECS, PRICING)
    for tier in (H, S, O):
        want = by_hand(tier, probs[tier], 60_000, 50_000, O, 500, 0.1)
        assert math.isclose(costs[tier].total_usd, want, rel_tol=1e-12)
    assert costs[O].cache == "read" and costs[H].cache == costs[S].cache == "write"
    assert costs[O].cached_tokens == 50_000 and costs[O].fresh_tokens == 10_000
    assert math.isclose(costs[O].cache_usd, 50_000 * 15.0 * 0.1 / 1e6)
    assert math.isclose(costs[H].cache_usd, 50_000 * 0.8 * 1.25 / 1e6)
    assert math.isclose(costs[H].output_usd, 500 * 4.0 / 1e6)
    assert math.isclose(costs[S].risk_usd, (1 - 0.95) * 0.1)


def test_no_prefix_means_no_cache_term() -> None:
    costs = price_tiers({H: 0.5, S: 0.5, O: 0.5}, shape(8_000, 0, O), SPECS, PRICING)
    assert {c.cache for c in costs.values()} == {"none"}
    assert all(c.cache_usd == 0 and c.fresh_tokens == 8_000 for c in costs.values())


def test_unknown_holder_makes_every_tier_write() -> None:
    costs = price_tiers({H: 0.5, S: 0.5, O: 0.5}, shape(9_000, 9_000, None), SPECS, PRICING)
    assert {c.cache for c in costs.values()} == {"write"}
    assert math.isclose(costs[S].cache_usd, 9_000 * 3.0 * WRITE / 1e6)


def test_break_even_prefix_between_staying_and_switching() -> None:
    """Sonnet holds the cache, haiku is adequate too (equal risk, so only tokens decide).
    Staying saves (haiku write - sonnet read) per prefix token and costs sonnet's extra on fresh
    input and output: staying wins exactly above fixed / saving tokens of prefix."""
    probs = {H: 0.9, S: 0.9, O: 0.9}
    fresh, out = 200, 300
    saving = 0.8 * WRITE - 3.0 * READ  # USD per 1e6 prefix tokens
    fixed = fresh * (3.0 - 0.8) + out * (15.0 - 4.0)
    break_even = fixed / saving
    below, above = int(break_even * 0.9), int(break_even * 1.1)
    low = choose_by_cost(probs, shape(below + fresh, below, S, out), SPECS, PRICING, 0.5)
    high = choose_by_cost(probs, shape(above + fresh, above, S, out), SPECS, PRICING, 0.5)
    assert low.tier == H, low.reason
    assert "switching from sonnet" in low.reason
    assert high.tier == S, high.reason
    assert "staying on sonnet" in high.reason and "re-write" in high.reason


def test_a_cache_on_an_expensive_model_can_still_lose() -> None:
    """In this table an opus read (0.1 x $15) costs more per token than a haiku write
    (1.25 x $0.8), so no prefix is big enough to keep an adequate haiku off."""
    assert 15.0 * READ > 0.8 * WRITE
    probs = {H: 0.9, S: 0.9, O: 0.9}
    decision = choose_by_cost(probs, shape(500_200, 500_000, O), SPECS, PRICING, 0.5)
    assert decision.tier == H


def test_threshold_filters_candidates_then_lowest_total_wins() -> None:
    # Haiku is cheapest in tokens but below threshold: not a candidate whatever its price.
    probs = {H: 0.49, S: 0.8, O: 0.99}
    turn = shape(1_000, 0, None, out=100, fail=0.0)
    decision = choose_by_cost(probs, turn, SPECS, PRICING, threshold=0.5)
    assert decision.candidates == (S, O)
    assert decision.tier == S
    # With a large failed-turn value the risk term makes opus cheaper in expectation.
    fail = 1.0
    want = min((S, O), key=lambda t: by_hand(t, probs[t], 1_000, 0, None, 100, fail))
    assert want == O
    assert choose_by_cost(probs, shape(1_000, 0, None, 100, fail), SPECS, PRICING, 0.5).tier == O


def test_threshold_is_inclusive_ties_go_to_the_cheaper_tier() -> None:
    free = {t: TierSpec(model=f"m-{t.value}", input_per_mtok=0, output_per_mtok=0) for t in PRICE}
    decision = choose_by_cost(
        {H: 0.5, S: 1.0, O: 1.0}, shape(10, 0, None, fail=0), free, PRICING, 0.5
    )
    assert decision.tier == H


def test_no_candidate_gives_the_most_capable_allowed() -> None:
    probs = {H: 0.1, S: 0.2, O: 0.3}
    assert choose_by_cost(probs, shape(10, 0, None), SPECS, PRICING, 0.5).tier == O
    capped = choose_by_cost(probs, shape(10, 0, None), SPECS, PRICING, 0.5, max_tier=S)
    assert capped.tier == S
    assert "max_tier=sonnet" in capped.reason


def test_min_tier_removes_cheaper_candidates() -> None:
    probs = {H: 0.9, S: 0.9, O: 0.9}
    decision = choose_by_cost(probs, shape(10, 0, None), SPECS, PRICING, 0.5, min_tier=S)
    assert decision.candidates == (S, O) and decision.tier == S


def test_breakdown_shows_every_tier_and_the_arithmetic() -> None:
    decision = choose_by_cost({H: 0.9, S: 0.9, O: 0.9}, shape(3_000, 2_000, O), SPECS, PRICING, 0.5)
    bd = decision.breakdown()
    assert bd["prefix_tokens"] == 2_000 and bd["cache_tier"] == "opus"
    assert set(bd["tiers"]) == {"haiku", "sonnet", "opus"}
    for row in bd["tiers"].values():
        parts = row["cache_usd"] + row["fresh_usd"] + row["output_usd"] + row["risk_usd"]
        assert math.isclose(row["total_usd"], parts)
        assert row["cached_tokens"] + row["fresh_tokens"] == 3_000


@given(
    p=st.tuples(*[st.floats(0, 1)] * 3),
    prompt=st.integers(0, 300_000),
    share=st.floats(0, 1),
    holder=st.sampled_from([None, H, S, O]),
    out=st.integers(0, 8_000),
    fail=st.floats(0, 5),
    threshold=st.floats(0, 1),
)
def test_choice_is_the_cheapest_candidate(
    p: tuple[float, float, float],
    prompt: int,
    share: float,
    holder: Tier | None,
    out: int,
    fail: float,
    threshold: float,
) -> None:
    probs = dict(zip((H, S, O), p, strict=True))
    prefix = int(prompt * share)
    decision = choose_by_cost(
        probs, shape(prompt, prefix, holder, out, fail), SPECS, PRICING, threshold
    )
    candidates = [t for t in (H, S, O) if probs[t] >= threshold]
    if not candidates:
        assert decision.tier == O
        return
    totals = {t: by_hand(t, probs[t], prompt, prefix, holder, out, fail) for t in candidates}
    assert decision.tier in candidates
    assert totals[decision.tier] <= min(totals.values()) + 1e-12


@pytest.mark.parametrize(("max_tokens", "want"), [(None, 500), (100, 100), (4096, 500)])
def test_expected_output_is_max_tokens_capped(max_tokens: int | None, want: int) -> None:
    assert expected_output_tokens(max_tokens, 500) == want


def test_prefix_from_usage() -> None:
    usage = Usage(
        input_tokens=30,
        output_tokens=900,
        cache_read_input_tokens=40_000,
        cache_creation_input_tokens=2_000,
    )
    assert prefix_from_usage(usage) == 42_030
    # A call that touched no cache leaves nothing cached: the client is not caching.
    assert prefix_from_usage(Usage(input_tokens=5_000, output_tokens=10)) == 0


def test_usage_cost_bills_cache_reads_and_writes() -> None:
    usage = Usage(
        input_tokens=1_000,
        output_tokens=2_000,
        cache_read_input_tokens=100_000,
        cache_creation_input_tokens=4_000,
    )
    want = (1_000 * 15.0 + 4_000 * 15.0 * WRITE + 100_000 * 15.0 * READ + 2_000 * 75.0) / 1e6
    assert math.isclose(usage_cost_usd(usage, SPECS[O], PRICING), want)


@pytest.mark.parametrize(
    ("model", "want"),
    [
        ("claude-opus-x", O),
        ("claude-haiku-x-20260101", H),
        ("sonnet", S),
        ("claude-opus-xl", None),
        ("gpt-4o", None),
    ],
)
def test_tier_for_model(model: str, want: Tier | None) -> None:
    assert tier_for_model(model, SPECS) == want


@pytest.mark.parametrize(("first", "second"), [(S, O), (O, S)])
def test_tier_for_model_longest_configured_id_wins(first: Tier, second: Tier) -> None:
    """Configured ids where one extends the other map to their own tiers, in any order."""
    ids = {first: "claude-opus-4", second: "claude-opus-4-1"}
    specs = {t: SPECS[t].model_copy(update={"model": ids.get(t, SPECS[t].model)}) for t in SPECS}
    assert tier_for_model("claude-opus-4-1", specs) == second
    assert tier_for_model("claude-opus-4-1-20250805", specs) == second
    assert tier_for_model("claude-opus-4", specs) == first
    assert tier_for_model("claude-opus-4-20250514", specs) == first


@pytest.mark.parametrize(
    ("model", "want"),
    [
        ("claude-opus-x-20260101", O),  # a configured id first
        ("claude-3-opus-20240229", O),  # else the tier its id names
        ("claude-sonnet-4-5", S),
        ("gpt-4o", None),
    ],
)
def test_billing_tier_falls_back_to_the_tier_named_in_the_id(model: str, want: Tier | None) -> None:
    assert billing_tier(model, SPECS) == want

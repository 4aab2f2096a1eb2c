import numpy as np
import pytest

from router.core.economics import TurnShape, decide_with_cache
from router.core.manifest import CurvePoint
from router.core.policy import (
    POLICIES,
    Bounds,
    ThresholdPolicy,
    UtilityPolicy,
    allowed_tiers,
    bundle_policy,
    cheapest_adequate,
    choose_by_utility,
    choose_tier,
    frontier,
    get_policy,
    knob_for_quality,
    pick_point,
)
from router.core.tiers import PricingSpec, Tier, TierSpec
from router.errors import BadRequestError

H, S, O = Tier.HAIKU, Tier.SONNET, Tier.OPUS
TIERS = (H, S, O)
UTILITY = UtilityPolicy()


def by_tier(values: tuple[float, float, float]) -> dict[Tier, float]:
    return dict(zip(TIERS, values, strict=True))


@pytest.mark.parametrize(
    ("probs", "threshold", "want"),
    [
        ({H: 0.9, S: 0.95, O: 0.99}, 0.5, H),
        ({H: 0.2, S: 0.7, O: 0.9}, 0.5, S),
        ({H: 0.2, S: 0.3, O: 0.6}, 0.5, O),
        ({H: 0.1, S: 0.1, O: 0.1}, 0.5, O),  # nothing adequate -> most capable
        ({H: 0.5, S: 0.5, O: 0.5}, 0.5, H),  # threshold is inclusive
    ],
)
def test_cheapest_adequate_tier(probs: dict[Tier, float], threshold: float, want: Tier) -> None:
    decision = choose_tier(probs, threshold)
    assert decision.tier == want
    assert want.value in decision.reason


def test_min_and_max_tier_clamp() -> None:
    probs = {H: 0.9, S: 0.9, O: 0.9}
    assert choose_tier(probs, 0.5, min_tier=S).tier == S
    low = {H: 0.1, S: 0.1, O: 0.1}
    decision = choose_tier(low, 0.5, max_tier=S)
    assert decision.tier == S
    assert "max_tier=sonnet" in decision.reason
    assert allowed_tiers(S, S) == [S]


def test_threshold_policy_takes_the_cheapest_adequate_by_expected_cost() -> None:
    """With per-tier answer forecasts a pricier tier can cost less: the threshold policy takes
    the adequate tier with the lowest expected cost, and says so."""
    probs = by_tier((0.9, 0.9, 0.9))
    decision = ThresholdPolicy().decide(probs, by_tier((0.004, 0.003, 0.005)), 0.5)
    assert decision.tier == S
    assert "lowest expected cost ($0.0030)" in decision.reason


def test_quality_target_picks_cheapest_point_reaching_it() -> None:
    curve = [CurvePoint(0.2, 0.7, 0.2), CurvePoint(0.5, 0.9, 0.5), CurvePoint(0.8, 0.95, 0.9)]
    assert knob_for_quality(0.85, curve) == 0.5
    assert knob_for_quality(0.95, curve) == 0.8
    with pytest.raises(BadRequestError, match="0.950"):
        knob_for_quality(0.99, curve)


def test_training_picks_the_cheapest_point_or_the_best_one() -> None:
    points = [CurvePoint(0.1, 0.8, 0.3), CurvePoint(0.5, 0.95, 0.6), CurvePoint(0.9, 0.99, 0.9)]
    assert pick_point(points, 0.9).knob == 0.5
    assert pick_point(points, 1.5).knob == 0.9  # unreachable: the best quality


def test_cheapest_adequate_escalates_when_nothing_is_adequate() -> None:
    adequate = np.array([[1, 1, 1], [0, 1, 1], [0, 0, 1], [0, 0, 0]], dtype=bool)
    assert cheapest_adequate(adequate).tolist() == [0, 1, 2, 2]


# ---------------------------------------------------------------- the utility policy by hand
# USD of one turn per tier (an input of 1k tokens, 300 answer tokens at 1/5, 3/15, 5/25 $/MTok).
COSTS = by_tier((0.0025, 0.0075, 0.0125))


def test_a_hopeless_prompt_goes_cheap_where_the_threshold_escalates() -> None:
    """No tier is likely to solve it: opus adds 0.05 expected quality for $0.01, worth $0.005
    at V = $0.10, so the utility policy keeps haiku; the threshold policy escalates to opus."""
    probs = by_tier((0.05, 0.07, 0.10))
    decision = UTILITY.decide(probs, COSTS, 0.10)
    assert decision.tier == H
    assert ThresholdPolicy().decide(probs, COSTS, 0.5).tier == O
    # The reason names the trade it declined, in the policy's own numbers.
    assert decision.reason.startswith("haiku: the cheapest choice ($0.0025)")
    assert "an inadequate answer is valued at $0.1" in decision.reason
    assert "opus would add +0.05 expected quality for +$0.0100, worth $0.0050" in decision.reason
    assert "off the efficient frontier: sonnet" in decision.reason
    # Higher stakes buy the gain: at V = $1 opus is worth its $0.01 (0.05 x $1 = $0.05).
    assert UTILITY.decide(probs, COSTS, 1.0).tier == O


def test_a_prompt_the_top_tier_helps_with_escalates() -> None:
    probs = by_tier((0.2, 0.7, 0.9))  # opus adds 0.2 over sonnet for $0.005: worth $0.02
    decision = UTILITY.decide(probs, COSTS, 0.10)
    assert decision.tier == O
    assert decision.reason.startswith("opus: +0.20 expected quality for +$0.0050 over sonnet")
    assert decision.off_frontier == ()


def test_a_dominated_middle_tier_is_skipped() -> None:
    """Sonnet's gain over haiku per dollar is below opus's: it is off the efficient frontier
    and no V chooses it, though it clears any threshold opus does not."""
    probs = by_tier((0.50, 0.55, 0.90))
    assert frontier(TIERS, probs, COSTS) == [H, O]
    for value in np.geomspace(1e-4, 10, 60):
        assert UTILITY.decide(probs, COSTS, float(value)).tier != S
    decision = UTILITY.decide(probs, COSTS, 0.10)
    assert decision.tier == O and decision.off_frontier == (S,)
    assert "off the efficient frontier: sonnet" in decision.reason
    assert ThresholdPolicy().decide(probs, COSTS, 0.55).tier == S


def test_the_middle_tier_on_the_frontier_is_chosen_in_its_range() -> None:
    probs = by_tier((0.3, 0.8, 0.85))
    assert frontier(TIERS, probs, COSTS) == [H, S, O]
    # haiku -> sonnet at V = 0.005/0.5 = $0.01; sonnet -> opus at 0.005/0.05 = $0.10
    assert UTILITY.decide(probs, COSTS, 0.009).tier == H
    assert UTILITY.decide(probs, COSTS, 0.011).tier == S
    assert UTILITY.decide(probs, COSTS, 0.099).tier == S
    assert UTILITY.decide(probs, COSTS, 0.101).tier == O


def test_bounds_restrict_the_utility_choice() -> None:
    probs = by_tier((0.2, 0.5, 0.9))
    decision = UTILITY.decide(probs, COSTS, 0.10, Bounds(max_tier=S))
    assert decision.tier == S and "(max_tier=sonnet)" in decision.reason
    assert UTILITY.decide(by_tier((0.9, 0.9, 0.9)), COSTS, 0.1, Bounds(min_tier=S)).tier == S


def test_the_cache_holder_is_favoured_on_cache_aware_costs() -> None:
    """Opus holds a 60k-token prefix. On its own the turn goes to haiku; with the cache, haiku
    and sonnet must re-write the prefix at 1.25x, so staying on opus wins at the same V."""
    specs = {
        t: TierSpec(model=f"m-{t.value}", input_per_mtok=i, output_per_mtok=o)
        for t, (i, o) in {H: (1.0, 5.0), S: (3.0, 15.0), O: (5.0, 25.0)}.items()
    }
    pricing = PricingSpec(
        cache_write_multiplier=1.25, cache_read_multiplier=0.1, batch_multiplier=0.5
    )
    probs = by_tier((0.80, 0.85, 0.88))
    cold = TurnShape(60_700, 0, None, 300, 0.05)
    warm = TurnShape(60_700, 60_000, O, 300, 0.05)
    assert decide_with_cache(UTILITY, 0.05, probs, cold, specs, pricing).tier == H
    choice = decide_with_cache(UTILITY, 0.05, probs, warm, specs, pricing)
    assert choice.tier == O
    assert "staying on opus reads the 60000-token cached prefix" in choice.reason
    # Priced by hand: opus reads 60k at 0.1 x $5, writes nothing; haiku writes 60k at 1.25 x $1.
    assert choice.costs[O].cache_usd == pytest.approx(60_000 * 5.0 * 0.1 / 1e6)
    assert choice.costs[H].cache_usd == pytest.approx(60_000 * 1.0 * 1.25 / 1e6)


def random_cases(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    probs = np.vstack([rng.random((n, 3)), [[0.5, 0.5, 0.5], [0.1, 0.1, 0.1], [0.2, 0.6, 0.6]]])
    costs = rng.integers(10, 5000, (len(probs), 3)) * np.array([1.0, 3.0, 5.0]) / 1e6
    costs[::7] = costs[::7, ::-1]  # some rows where a pricier tier costs less (cache, lengths)
    return probs, costs


@pytest.mark.parametrize("name", sorted(POLICIES))
@pytest.mark.parametrize("bounds", [Bounds(), Bounds(min_tier=S), Bounds(max_tier=S)])
def test_vectorised_and_per_request_forms_agree(name: str, bounds: Bounds) -> None:
    """Every registered policy chooses row by row what it decides for one request, within
    the same bounds (the vectorised form takes them as an allowed mask)."""
    policy = get_policy(name)
    probs, costs = random_cases(300, seed=1)
    allowed = np.zeros(probs.shape, dtype=bool)
    allowed[:, [t.rank for t in allowed_tiers(*bounds)]] = True
    knobs = list(policy.knobs(probs, costs, allowed, max_points=12)) + [0.0, 0.3, 0.5, 0.9]
    for knob in knobs:
        chosen = policy.choose(probs, costs, float(knob), allowed)
        want = [
            policy.decide(by_tier(p), by_tier(c), float(knob), bounds).tier.rank
            for p, c in zip(probs, costs, strict=True)
        ]
        assert chosen.tolist() == want


@pytest.mark.parametrize("name", sorted(POLICIES))
def test_knobs_sweep_from_cheapest_to_most_quality(name: str) -> None:
    """Along a policy's knobs every row's chosen quality never falls, the first knob is the
    cheapest choice per row and the last the most quality; consecutive knobs differ."""
    policy = get_policy(name)
    probs, costs = random_cases(100, seed=2)
    knobs = policy.knobs(probs, costs)
    assert np.all(np.diff(knobs) > 0)
    rows = np.arange(len(probs))
    chosen = np.stack([policy.choose(probs, costs, float(k)) for k in knobs])
    quality = probs[rows, chosen]
    # The threshold policy falls back to the top tier, which need not be the best rated.
    rising = np.all(np.diff(probs, axis=1) >= 0, axis=1) if name == "threshold" else rows >= 0
    assert np.all(np.diff(quality[:, rising], axis=0) >= -1e-12)
    if name == "utility":
        assert np.allclose(costs[rows, chosen[0]], costs.min(axis=1))
        assert np.allclose(quality[-1], probs.max(axis=1))
        # Every decision set between consecutive knobs is hit: none is skipped or repeated.
        assert all((a != b).any() for a, b in zip(chosen, chosen[1:], strict=False))
    else:
        assert chosen[-1].tolist() == [2] * len(probs)


def test_utility_choice_is_the_argmin_of_the_trade_off() -> None:
    probs, costs = random_cases(500, seed=3)
    for value in (0.0, 0.001, 0.01, 0.1):
        chosen = choose_by_utility(probs, costs, value)
        totals = costs + (1 - probs) * value
        rows = np.arange(len(probs))
        assert np.all(totals[rows, chosen] <= totals.min(axis=1) + 1e-15)


def test_a_turn_larger_than_the_reference_values_failure_in_proportion() -> None:
    """With a reference turn cost, a turn whose dearest tier costs m x the reference decides
    as the plain policy would with m x the knob; a turn at or under the reference as with the
    knob itself. Vectorised and per-request forms agree, and the reason names the scaled value."""
    probs, costs = random_cases(400, seed=4)
    reference = float(np.median(costs.max(axis=1)))
    sized = UtilityPolicy(reference)
    m = np.maximum(1.0, costs.max(axis=1) / reference)
    for knob in (0.0005, 0.002, 0.01):
        chosen = sized.choose(probs, costs, knob)
        plain = [
            choose_by_utility(probs[i : i + 1], costs[i : i + 1], knob * m[i])[0]
            for i in range(len(probs))
        ]
        assert chosen.tolist() == plain
        for i in range(0, len(probs), 37):
            d = sized.decide(by_tier(tuple(probs[i])), by_tier(tuple(costs[i])), knob)
            assert d.tier.rank == chosen[i]
            assert f"valued at ${knob * m[i]:.3g}" in d.reason
    assert (m > 1).any() and (m == 1).any()  # both kinds of turn were exercised


def test_bundle_policy_carries_the_reference_only_to_the_utility_policy() -> None:
    sized = bundle_policy("utility", 0.01)
    assert isinstance(sized, UtilityPolicy) and sized.reference_usd == 0.01
    assert bundle_policy("threshold", 0.01) is get_policy("threshold")
    assert UtilityPolicy().size(5.0) == 1.0 and UtilityPolicy(0.5).size(5.0) == 10.0


def test_threshold_policy_vectorised_picks_cheapest_adequate() -> None:
    probs = np.array([[0.9, 0.9, 0.9], [0.2, 0.7, 0.9], [0.1, 0.2, 0.3]])
    assert get_policy("threshold").choose(probs, np.zeros_like(probs), 0.6).tolist() == [0, 1, 2]


def test_unknown_policy_names_the_choices() -> None:
    with pytest.raises(BadRequestError, match="'threshold', 'utility'"):
        get_policy("nope")

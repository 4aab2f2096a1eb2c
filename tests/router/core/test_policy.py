import pytest

from router.core.policy import CurvePoint, allowed_tiers, choose_tier, threshold_for_quality
from router.core.tiers import Tier
from router.errors import BadRequestError

H, S, O = Tier.HAIKU, Tier.SONNET, Tier.OPUS


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


def test_quality_target_picks_cheapest_point_reaching_it() -> None:
    curve = [CurvePoint(0.2, 0.7, 0.2), CurvePoint(0.5, 0.9, 0.5), CurvePoint(0.8, 0.95, 0.9)]
    assert threshold_for_quality(0.85, curve) == 0.5
    assert threshold_for_quality(0.95, curve) == 0.8
    with pytest.raises(BadRequestError, match="0.950"):
        threshold_for_quality(0.99, curve)

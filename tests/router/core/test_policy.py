import numpy as np
import pytest

from router.core.manifest import CurvePoint
from router.core.policy import (
    POLICIES,
    allowed_tiers,
    cheapest_adequate,
    choose_tier,
    get_policy,
    pick_point,
    threshold_for_quality,
)
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


def test_training_picks_the_cheapest_point_or_the_best_one() -> None:
    points = [CurvePoint(0.1, 0.8, 0.3), CurvePoint(0.5, 0.95, 0.6), CurvePoint(0.9, 0.99, 0.9)]
    assert pick_point(points, 0.9).threshold == 0.5
    assert pick_point(points, 1.5).threshold == 0.9  # unreachable: the best quality


def test_cheapest_adequate_escalates_when_nothing_is_adequate() -> None:
    adequate = np.array([[1, 1, 1], [0, 1, 1], [0, 0, 1], [0, 0, 0]], dtype=bool)
    assert cheapest_adequate(adequate).tolist() == [0, 1, 2, 2]


@pytest.mark.parametrize("name", sorted(POLICIES))
def test_vectorised_and_per_request_forms_agree(name: str) -> None:
    """Every registered policy chooses row by row what it decides for one request."""
    policy = get_policy(name)
    rng = np.random.default_rng(0)
    probs = np.vstack([rng.random((200, 3)), [[0.5, 0.5, 0.5], [0.1, 0.1, 0.1]]])
    costs = np.outer(rng.integers(10, 5000, len(probs)), [1.0, 3.0, 5.0]) / 1e6
    for threshold in (0.0, 0.3, 0.5, 0.9):
        chosen = policy.choose(probs, costs, threshold)
        want = [
            policy.decide(
                dict(zip((H, S, O), p, strict=True)),
                dict(zip((H, S, O), c, strict=True)),
                threshold,
            ).tier.rank
            for p, c in zip(probs, costs, strict=True)
        ]
        assert chosen.tolist() == want


def test_threshold_policy_vectorised_picks_cheapest_adequate() -> None:
    probs = np.array([[0.9, 0.9, 0.9], [0.2, 0.7, 0.9], [0.1, 0.2, 0.3]])
    assert get_policy("threshold").choose(probs, np.zeros_like(probs), 0.6).tolist() == [0, 1, 2]


def test_unknown_policy_names_the_choices() -> None:
    with pytest.raises(BadRequestError, match="'threshold'"):
        get_policy("nope")

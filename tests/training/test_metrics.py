from __future__ import annotations

import numpy as np
import pytest

from training.metrics import (
    OperatingPoint,
    cheapest_adequate,
    choose_by_threshold,
    evaluate_routing,
    length_at_mix,
    mix_counts,
    operating_curve,
    pick_threshold,
    random_at_mix,
    routing_report,
)

PRICES = np.array([1.0, 3.0, 5.0])


def test_cheapest_adequate_escalates_when_nothing_is_adequate() -> None:
    adequate = np.array([[1, 1, 1], [0, 1, 1], [0, 0, 1], [0, 0, 0]], dtype=bool)
    assert cheapest_adequate(adequate).tolist() == [0, 1, 2, 2]


def test_choose_by_threshold_matches_policy_order() -> None:
    probs = np.array([[0.9, 0.9, 0.9], [0.2, 0.7, 0.9], [0.1, 0.2, 0.3]])
    assert choose_by_threshold(probs, 0.6).tolist() == [0, 1, 2]


def test_evaluate_routing_quality_and_cost_shares() -> None:
    scores = np.array([[1.0, 1.0, 1.0], [0.0, 1.0, 1.0], [0.0, 0.0, 1.0], [0.0, 0.0, 0.0]])
    tokens = np.array([100.0, 100.0, 100.0, 100.0])
    out = evaluate_routing("x", np.array([0, 0, 2, 2]), scores, scores >= 0.5, tokens, PRICES)
    assert out.quality == pytest.approx(0.5)
    assert out.quality_share == pytest.approx(0.5 / 0.75)
    assert out.cost_share == pytest.approx((1 + 1 + 5 + 5) / 20)
    assert out.cost_saved == pytest.approx(1 - 12 / 20)
    assert out.tier_accuracy == pytest.approx(0.75)  # row 1 under-routed
    assert out.under_routed == pytest.approx(0.25)
    assert out.over_routed == 0.0
    assert out.tier_mix == (0.5, 0.0, 0.5)


def test_curve_is_monotone_in_cost_and_pick_threshold() -> None:
    rng = np.random.default_rng(0)
    probs = rng.random((200, 3))
    probs.sort(axis=1)
    scores = (rng.random((200, 3)) < [0.4, 0.6, 0.7]).astype(float)
    tokens = rng.integers(10, 500, 200).astype(float)
    curve = operating_curve(probs, scores, tokens, PRICES, [0.1, 0.5, 0.9, 1.0])
    costs = [p.cost for p in curve]
    assert costs == sorted(costs)
    assert curve[-1].cost == pytest.approx(1.0)  # nothing reaches 1.0 -> always top
    points = [
        OperatingPoint(0.1, 0.8, 0.3),
        OperatingPoint(0.5, 0.95, 0.6),
        OperatingPoint(0.9, 0.99, 0.9),
    ]
    assert pick_threshold(points, 0.9).threshold == 0.5
    assert pick_threshold(points, 1.5).threshold == 0.9


@pytest.mark.parametrize("n", [1, 7, 100])
def test_mix_baselines_keep_the_mix(n: int) -> None:
    mix = (0.5, 0.3, 0.2)
    counts = mix_counts(mix, n)
    assert counts.sum() == n
    assert np.bincount(random_at_mix(mix, n, seed=1), minlength=3).tolist() == counts.tolist()
    lengths = np.arange(n, 0, -1).astype(float)  # longest first
    chosen = length_at_mix(lengths, mix)
    assert np.bincount(chosen, minlength=3).tolist() == counts.tolist()
    assert chosen[0] == chosen.max() and chosen[-1] == chosen.min()


def test_routing_report_has_router_and_baselines() -> None:
    rng = np.random.default_rng(1)
    scores = (rng.random((50, 3)) < [0.4, 0.6, 0.7]).astype(float)
    chosen = rng.integers(0, 3, 50)
    report = routing_report(
        chosen, scores, scores >= 0.5, np.full(50, 10.0), PRICES, rng.random(50)
    )
    names = [o.name for o in report]
    assert names == [
        "router",
        "always_cheap",
        "always_top",
        "random_at_mix",
        "length_at_mix",
        "oracle",
    ]
    by = {o.name: o for o in report}
    assert by["always_top"].quality_share == pytest.approx(1.0)
    assert by["always_top"].cost_saved == pytest.approx(0.0)
    assert by["always_cheap"].cost_share == pytest.approx(0.2)
    assert by["random_at_mix"].tier_mix == by["router"].tier_mix
    assert by["oracle"].tier_accuracy == 1.0

from __future__ import annotations

import numpy as np
import pytest

from router.core.policy import get_policy
from training.heldout import RoutingRows, evaluate_routing, knob_curve, routing_report

PRICES = np.array([1.0, 3.0, 5.0])
POLICY = get_policy("threshold")


def test_evaluate_routing_quality_and_cost_shares() -> None:
    scores = np.array([[1.0, 1.0, 1.0], [0.0, 1.0, 1.0], [0.0, 0.0, 1.0], [0.0, 0.0, 0.0]])
    costs = np.outer(np.full(4, 100.0), PRICES)
    out = evaluate_routing("x", np.array([0, 0, 2, 2]), scores, scores >= 0.5, costs)
    assert out.quality == pytest.approx(0.5)
    assert out.quality_share == pytest.approx(0.5 / 0.75)
    assert out.cost_share == pytest.approx((1 + 1 + 5 + 5) / 20)
    assert out.cost_saved == pytest.approx(1 - 12 / 20)
    assert out.tier_accuracy == pytest.approx(0.75)  # row 1 under-routed
    assert out.under_routed == pytest.approx(0.25)
    assert out.over_routed == 0.0
    assert out.tier_mix == (0.5, 0.0, 0.5)


def test_curve_is_monotone_in_cost() -> None:
    rng = np.random.default_rng(0)
    probs = rng.random((200, 3))
    probs.sort(axis=1)
    scores = (rng.random((200, 3)) < [0.4, 0.6, 0.7]).astype(float)
    costs = np.outer(rng.integers(10, 500, 200).astype(float), PRICES)
    rows = RoutingRows.of(probs, costs, scores, costs)
    curve = knob_curve(POLICY, rows, max_points=4, knobs=[0.1, 0.5, 0.9, 1.0])
    shares = [p.cost for p in curve]
    assert shares == sorted(shares)
    assert curve[-1].cost == pytest.approx(1.0)  # nothing reaches 1.0 -> always top


def test_routing_report_has_router_and_baselines() -> None:
    rng = np.random.default_rng(1)
    scores = (rng.random((50, 3)) < [0.4, 0.6, 0.7]).astype(float)
    chosen = rng.integers(0, 3, 50)
    costs = np.outer(np.full(50, 10.0), PRICES)
    report = routing_report(chosen, scores, scores >= 0.5, costs, rng.random(50))
    names = [o.name for o in report]
    assert names == "router always_cheap always_top random_at_mix length_at_mix oracle".split()
    by = {o.name: o for o in report}
    assert by["always_top"].quality_share == pytest.approx(1.0)
    assert by["always_top"].cost_saved == pytest.approx(0.0)
    assert by["always_cheap"].cost_share == pytest.approx(0.2)
    assert by["random_at_mix"].tier_mix == by["router"].tier_mix
    assert by["oracle"].tier_accuracy == 1.0

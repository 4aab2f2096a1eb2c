"""The paired bootstrap on constructed cases whose difference is known resample by resample."""

from __future__ import annotations

import zlib

import numpy as np
import pytest

from eval.bootstrap import Interval, interval, resample_weights
from eval.comparison import Method, compare_subset
from eval.routing import coin, routing_set, sweep
from router.core.policy import get_policy


def solvable(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Binary scores where tier k solves difficulty <= k (every turn solvable by the top) and
    per-turn costs that vary in size but keep the 1:3:5 tier ratio."""
    rng = np.random.default_rng(seed)
    difficulty = rng.integers(0, 3, n)
    scores = (difficulty[:, None] <= np.arange(3)[None, :]).astype(np.float64)
    costs = np.outer(rng.uniform(0.5, 2.0, n), [1.0, 3.0, 5.0])
    return scores, costs


def test_router_minus_coin_is_the_known_difference_on_every_resample() -> None:
    """A router that knows the labels routes each turn to its cheapest adequate tier: its curve
    is (0, 0) -> (x_o, 1) -> (1, 1), APGR = 1 - x_o / 2, where x_o is the oracle's cost share on
    the resample; the coin's APGR is exactly 0.5. So router - coin = 0.5 - x_o / 2 on each
    resample, and the interval must be the percentiles of that."""
    n, n_boot, seed = 300, 200, 7
    scores, costs = solvable(n, 1)
    rs = routing_set(scores, scores, costs)
    assert rs is not None
    router = sweep("router", get_policy("threshold"), scores, costs, rs)
    methods = [Method("router", "router", router), Method("coin", "peer", coin(rs))]
    result = compare_subset(
        methods, rs, "all", "pooled", np.arange(n), n_boot, seed, ["h", "s", "o"]
    )
    coin_result = result.method("coin")
    assert coin_result is not None and coin_result.router_minus_apgr is not None

    weights = resample_weights(n, n_boot, seed + zlib.crc32(b"all"))
    cheapest_adequate = np.argmax(scores == 1.0, axis=1)
    oracle_cost = costs[np.arange(n), cheapest_adequate]
    x_o = (weights @ oracle_cost - weights @ costs[:, 0]) / (
        weights @ costs[:, 2] - weights @ costs[:, 0]
    )
    want = 0.5 - x_o / 2
    got = coin_result.router_minus_apgr
    assert (got.low, got.high) == pytest.approx(tuple(np.percentile(want, [2.5, 97.5])))
    assert got.excludes_zero and got.low > 0
    coin_ci = coin_result.apgr_ci
    assert coin_ci is not None  # the coin is the diagonal on every resample
    assert (coin_ci.estimate, coin_ci.low, coin_ci.high) == pytest.approx((0.5, 0.5, 0.5), abs=1e-6)
    # The point estimate is the full-sample value of the same formula.
    full = (oracle_cost.sum() - costs[:, 0].sum()) / (costs[:, 2].sum() - costs[:, 0].sum())
    router_result = result.method("router")
    assert router_result is not None and router_result.apgr == pytest.approx(1 - full / 2)
    assert got.estimate == pytest.approx(0.5 - full / 2)  # the full-sample difference


def test_identical_methods_differ_by_exactly_zero() -> None:
    scores, costs = solvable(120, 2)
    rs = routing_set(scores, scores, costs)
    assert rs is not None
    probs = np.clip(scores + np.random.default_rng(0).normal(0, 0.3, scores.shape), 0, 1)
    routed = sweep("router", get_policy("threshold"), probs, costs, rs)
    twin = sweep("twin", get_policy("threshold"), probs, costs, rs)
    methods = [Method("router", "router", routed), Method("twin", "peer", twin)]
    result = compare_subset(methods, rs, "all", "pooled", np.arange(120), 50, 0, ["h", "s", "o"])
    diff = result.method("twin").router_minus_apgr  # type: ignore[union-attr]
    assert diff == Interval(0.0, 0.0, 0.0) and not diff.excludes_zero
    assert result.best_peer_apgr == "twin"


def test_interval_is_none_for_an_undefined_metric() -> None:
    assert interval(np.full(10, np.nan)) is None
    iv = interval(np.arange(101, dtype=np.float64))
    assert iv is not None and (iv.estimate, iv.low, iv.high) == pytest.approx((50.0, 2.5, 97.5))
    given = interval(np.arange(101, dtype=np.float64), estimate=42.0)
    assert given is not None and given.estimate == 42.0

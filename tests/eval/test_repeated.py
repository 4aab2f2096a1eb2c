"""Repeated CV on constructed routing problems: pooled folds route each row as its own fold's
policy would, one repeat reproduces eval.comparison exactly, repeats are averaged resample by
resample, and issue 8's targets say met or missed by how much."""

from __future__ import annotations

import numpy as np
import pytest

from eval.bootstrap import Interval
from eval.comparison import Method, compare
from eval.folds import fold_policy_costs, pool_folds
from eval.repeated import RepeatedMethod, RepeatedSubset, compare_repeats, targets
from eval.routing import RoutingSet, coin, oracle, routing_set, sweep
from router.core.policy import UtilityPolicy

TIERS = ["h", "s", "o"]


def problem(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(scores, costs, categories): tier k solves difficulty <= k, with noise; two categories."""
    rng = np.random.default_rng(seed)
    difficulty = rng.integers(0, 3, n)
    scores = (difficulty[:, None] <= np.arange(3)[None, :]).astype(np.float64)
    flip = rng.random(scores.shape) < 0.1
    scores = np.where(flip, 1 - scores, scores)
    costs = np.outer(rng.uniform(0.5, 4.0, n), [1.0, 3.0, 5.0]) / 1000
    return scores, costs, np.asarray(["a", "b"])[rng.integers(0, 2, n)]


def noisy(scores: np.ndarray, noise: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(0.8 * scores + 0.1 + rng.normal(0, noise, scores.shape), 0, 1)


def methods(rs: RoutingSet, scores: np.ndarray, costs: np.ndarray, seed: int) -> list[Method]:
    policy = UtilityPolicy()
    return [
        Method("router", "router", sweep("router", policy, noisy(scores, 0.2, seed), costs, rs)),
        Method("peer_a", "peer", sweep("peer_a", policy, noisy(scores, 0.4, seed + 1), costs, rs)),
        Method("peer_b", "peer", sweep("peer_b", policy, noisy(scores, 0.6, seed + 2), costs, rs)),
        Method("coin", "baseline", coin(rs)),
        Method("oracle", "reference", oracle(rs)),
    ]


def test_pool_folds_puts_each_fold_back_and_refuses_overlaps() -> None:
    rows = [np.array([0, 3]), np.array([1, 2])]
    pooled = pool_folds(4, [(r, np.full((2, 3), float(f))) for f, r in enumerate(rows)])
    assert pooled[:, 0].tolist() == [0.0, 1.0, 1.0, 0.0]
    with pytest.raises(ValueError, match="partition"):
        pool_folds(4, [(np.array([0, 1]), np.zeros(2)), (np.array([1, 2]), np.zeros(2))])


def test_pooled_costs_route_every_row_as_its_folds_policy_does() -> None:
    rng = np.random.default_rng(3)
    n = 400
    probs = rng.random((n, 3))
    believed = np.outer(rng.lognormal(0, 1, n), [1.0, 3.0, 5.0]) / 1000
    folds = rng.integers(0, 3, n)
    policies = [UtilityPolicy(float(r)) for r in (0.002, 0.004, 0.008)]
    weighed = fold_policy_costs(believed, folds, policies)
    for knob in (0.0, 0.001, 0.01, 0.1, 1.0):
        pooled = UtilityPolicy().choose(probs, weighed, knob)
        for f, policy in enumerate(policies):
            rows = folds == f
            assert (pooled[rows] == policy.choose(probs[rows], believed[rows], knob)).all()


def test_one_repeat_is_the_single_split_comparison() -> None:
    scores, costs, cats = problem(300, 0)
    rs = routing_set(scores, scores, costs)
    assert rs is not None
    ms = methods(rs, scores, costs, 0)
    single = compare(ms, rs, cats, 100, 5, TIERS)
    repeated = compare_repeats([ms], rs, cats, 100, 5, TIERS)
    assert [s.name for s in repeated] == [s.name for s in single] == ["all", "a", "b"]
    for one, rep in zip(single, repeated, strict=True):
        assert (rep.best_peer_apgr, rep.best_peer_saving) == (
            one.best_peer_apgr,
            one.best_peer_saving,
        )
        for m in one.methods:
            r = rep.method(m.name)
            assert r is not None and r.apgr_repeats == (pytest.approx(m.apgr, nan_ok=True),)
            for got, want in ((r.apgr_ci, m.apgr_ci), (r.router_minus_apgr, m.router_minus_apgr),
                              (r.router_minus_saving, m.router_minus_saving)):  # fmt: skip
                assert (got is None) == (want is None)
                if got is not None and want is not None:
                    assert (got.estimate, got.low, got.high) == pytest.approx(
                        (want.estimate, want.low, want.high)
                    )


def test_repeats_are_averaged_resample_by_resample() -> None:
    scores, costs, cats = problem(300, 1)
    rs = routing_set(scores, scores, costs)
    assert rs is not None
    a, b = methods(rs, scores, costs, 10), methods(rs, scores, costs, 20)
    both = compare_repeats([a, b], rs, cats, 100, 5, TIERS)[0]
    first = compare_repeats([a], rs, cats, 100, 5, TIERS)[0]
    second = compare_repeats([b], rs, cats, 100, 5, TIERS)[0]
    for name in ("router", "peer_a", "peer_b", "oracle"):
        m, x, y = both.method(name), first.method(name), second.method(name)
        assert m is not None and x is not None and y is not None
        assert m.apgr == pytest.approx((x.apgr + y.apgr) / 2)
        assert m.apgr_repeats == (x.apgr, y.apgr)
        # The oracle does not depend on predictions: the repeats agree.
        if name == "oracle":
            assert m.apgr_ci == x.apgr_ci
    diff = both.method("peer_a").router_minus_apgr  # type: ignore[union-attr]
    assert diff is not None and diff.low <= diff.estimate <= diff.high
    # The same repeat twice is that repeat.
    twice = compare_repeats([a, a], rs, cats, 100, 5, TIERS)[0]
    assert twice.method("peer_a").router_minus_apgr == first.method("peer_a").router_minus_apgr  # type: ignore[union-attr]


def _method(name: str, kind: str, apgr: float, saving: float,
            d_apgr: tuple[float, float, float] | None = None,
            d_saving: tuple[float, float, float] | None = None) -> RepeatedMethod:  # fmt: skip
    def iv(t: tuple[float, float, float] | None) -> Interval | None:
        return Interval(*t) if t else None

    return RepeatedMethod(name, kind, apgr, saving, (apgr,), (saving,), None, None,  # type: ignore[arg-type]
                          iv(d_apgr), iv(d_saving))  # fmt: skip


def test_targets_say_met_or_missed_by_how_much() -> None:
    subset = RepeatedSubset(
        "all", "pooled", 100, ("h", "o"),
        (
            _method("router", "router", 0.66, 0.40),
            _method("irt", "peer", 0.62, 0.30, (0.04, 0.01, 0.07), (0.10, 0.02, 0.18)),
            _method("prior", "peer", 0.55, 0.35, (0.11, 0.08, 0.14), (0.05, -0.01, 0.11)),
            _method("oracle", "reference", 0.9, 0.75, (-0.24, -0.3, -0.2), (-0.35, -0.4, -0.3)),
        ),
        "irt", "prior", Interval(0.125, -0.05, 0.3),
    )  # fmt: skip
    t = targets(subset)
    assert t is not None
    assert (t.best_peer_apgr, t.apgr_met, t.apgr_ci_excludes_zero) == ("irt", False, True)
    assert t.apgr_short == pytest.approx(0.01)
    # Half the gap from prior's 35% to the oracle's 75% is 55%: the router's 40% is 15 pts short.
    assert (t.best_peer_saving, t.saving_met, t.saving_ci_excludes_zero) == ("prior", False, False)
    assert t.saving_short == pytest.approx(0.15)

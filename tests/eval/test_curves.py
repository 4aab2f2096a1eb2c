"""Routing curves on hand-built arrays; every expectation is derived from the definitions."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pytest

from eval.curves import PolicyPoint, Reference, aiq, apgr, cpt
from eval.routing_metrics import RoutingInputs, RoutingMetrics, oracle_choice, routing_metrics
from router.core.policy import ABOVE_ONE, UtilityPolicy, choose_tier, get_policy
from router.core.tiers import TIER_ORDER, Tier

NAN = float("nan")
TIERS = TIER_ORDER


def metrics(
    probs: np.ndarray,
    scores: np.ndarray,
    adequate: np.ndarray,
    costs: np.ndarray,
    tiers: Sequence[Tier],
    knob: float,
    lengths: np.ndarray | None = None,
    categories: Sequence[str] | None = None,
    policy: object | None = None,
    peers: dict[str, np.ndarray] | None = None,
    n_boot: int = 0,
) -> RoutingMetrics | None:
    n = len(scores)
    inputs = RoutingInputs(
        scores=scores,
        adequate=adequate,
        costs=costs,
        policy_costs=costs,
        lengths=np.ones(n) if lengths is None else lengths,
        categories=np.asarray(categories or ["x"] * n, dtype=str),
        tiers=tuple(tiers),
    )
    sweeper = policy or get_policy("threshold")
    return routing_metrics(inputs, probs, peers or {}, sweeper, knob, n_boot)


def monotone_case() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Six turns: difficulty d handled by tiers >= d; two turns no tier handles. Binary scores,
    so quality == adequacy; costs 1/3/5 per turn as the price ratio."""
    adequate = np.array(
        [[1, 1, 1], [1, 1, 1], [0, 1, 1], [0, 0, 1], [0, 0, 0], [0, 1, 1]], dtype=np.float64
    )
    costs = np.tile([1.0, 3.0, 5.0], (len(adequate), 1))
    return adequate.copy(), adequate, costs


def point(cost_share: float, pgr: float, cost: float | None = None, q: float | None = None):
    return PolicyPoint(
        "p",
        None,
        pgr if q is None else q,
        cost_share if cost is None else cost,
        cost_share,
        pgr,
        (),
    )


def test_always_cheap_pgr_0_always_top_pgr_1_and_oracle_recovers_the_whole_gap() -> None:
    scores, adequate, costs = monotone_case()
    probs = np.full_like(scores, 0.5)
    m = metrics(probs, scores, adequate, costs, TIERS, knob=0.5)
    assert m is not None
    cheap, _, top = m.always
    assert (cheap.pgr, cheap.cost_share) == (0.0, 0.0)
    assert (top.pgr, top.cost_share) == (1.0, 1.0)
    # Oracle: cheapest adequate tier, cheapest when none is: rows -> 0,0,1,2,0,1.
    oracle_cost = np.mean([1, 1, 3, 5, 1, 3])
    assert m.oracle.pgr == 1.0
    assert m.oracle.cost == pytest.approx(oracle_cost)
    assert m.oracle.cost_share == pytest.approx((oracle_cost - 1) / (5 - 1))
    assert m.oracle.calls == pytest.approx((3 / 6, 2 / 6, 1 / 6))


def test_a_router_that_knows_the_labels_traces_the_oracle() -> None:
    scores, adequate, costs = (a[[0, 1, 2, 3, 5]] for a in monotone_case())  # all solvable
    m = metrics(adequate.copy(), scores, adequate, costs, TIERS, knob=0.5)
    assert m is not None
    assert m.router.quality == m.oracle.quality and m.router.cost == m.oracle.cost
    assert m.confusion.exact_rate == 1.0
    assert m.confusion.under_rate == 0.0 and m.confusion.over_rate == 0.0
    # Sweep: t=0 -> all cheap (0, 0); t in (0, 1] -> the oracle (x_o, 1); above 1 -> all top (1, 1).
    x_o = m.oracle.cost_share
    router = m.curves[0]
    assert router.apgr == pytest.approx(x_o / 2 + (1 - x_o))
    assert router.cpt50 == pytest.approx(0.5 * x_o)
    assert router.cpt80 == pytest.approx(0.8 * x_o)


def test_random_at_the_mix_of_a_two_tier_router_is_the_diagonal() -> None:
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 2, size=(50, 2)).astype(np.float64)
    scores[:, 1] = np.maximum(scores[:, 1], scores[:, 0])  # top never worse
    scores[0] = [0, 1]  # a gap to recover
    costs = np.tile([1.0, 4.0], (50, 1))
    probs = rng.random((50, 2))
    m = metrics(probs, scores, scores, costs, TIERS[::2], knob=0.5)
    assert m is not None
    random = m.curve("random")
    assert random is not None
    for p in random.points:  # cost share == pgr == share of calls to the top tier
        assert p.cost_share == pytest.approx(p.calls[1])
        assert p.pgr == pytest.approx(p.calls[1])
    assert random.apgr == pytest.approx(0.5)
    ref = m.reference
    assert random.aiq == pytest.approx((ref.cheap_quality + ref.top_quality) / 2)


def test_apgr_cpt_and_aiq_from_their_definitions() -> None:
    pts = [point(0, 0), point(0.25, 0.5), point(0.5, 0.9), point(1, 1)]
    area = 0.25 * 0.5 / 2 + 0.25 * (0.5 + 0.9) / 2 + 0.5 * (0.9 + 1) / 2
    assert apgr(pts) == pytest.approx(area)
    assert cpt(pts, 0.5) == pytest.approx(0.25)  # reached exactly at a point
    assert cpt(pts, 0.8) == pytest.approx(0.25 + 0.25 * (0.8 - 0.5) / (0.9 - 0.5))
    assert math.isnan(cpt(pts, 1.5))
    ref = Reference(0, 1, 0, 1)
    # A point under the chord is not on the hull; one above it is.
    assert aiq([point(0, 0), point(0.5, 0.1), point(1, 1)], ref) == pytest.approx(0.5)
    assert aiq([point(0, 0), point(0.5, 0.9), point(1, 1)], ref) == pytest.approx(
        0.5 * 0.9 / 2 + 0.5 * 1.9 / 2
    )
    # Non-decreasing: after the best point, quality stays at its level.
    assert aiq([point(0, 0), point(0.5, 1), point(1, 0.8)], ref) == pytest.approx(0.25 + 0.5)
    # Normalised by the cost range: doubling costs leaves AIQ unchanged.
    doubled = [point(0, 0, cost=0, q=0), point(0.5, 0.9, cost=1, q=0.9), point(1, 1, cost=2, q=1)]
    assert aiq(doubled, Reference(0, 1, 0, 2)) == pytest.approx(0.5 * 0.9 / 2 + 0.5 * 1.9 / 2)


def test_sweep_routes_like_choose_tier() -> None:
    rng = np.random.default_rng(1)
    probs = rng.random((40, 3))
    scores = rng.random((40, 3))
    costs = np.tile([1.0, 3.0, 5.0], (40, 1))
    m = metrics(probs, scores, (scores >= 0.5) * 1.0, costs, TIERS, knob=0.6)
    assert m is not None
    want = [choose_tier(dict(zip(TIERS, row, strict=True)), 0.6).tier for row in probs]
    mix = [sum(t == tier for t in want) / 40 for tier in TIERS]
    assert m.router.calls == pytest.approx(mix)
    curve = m.curves[0]
    assert curve.points[0].calls == (1.0, 0.0, 0.0)  # the lowest knob: all cheapest
    assert curve.points[-1].calls == (0.0, 0.0, 1.0)
    assert ABOVE_ONE in [p.threshold for p in curve.points]  # above any P: all top
    costs_along = [p.cost for p in curve.points]
    assert costs_along == sorted(costs_along)


def test_length_heuristic_equals_oracle_when_length_is_difficulty() -> None:
    scores, adequate, costs = monotone_case()
    keep = [0, 1, 2, 3, 5]  # drop the turn nothing handles
    scores, adequate, costs = scores[keep], adequate[keep], costs[keep]
    lengths = np.array([10.0, 20, 300, 4000, 310])
    m = metrics(adequate.copy(), scores, adequate, costs, TIERS, 0.5, lengths=lengths)
    assert m is not None
    length = next(c for c in m.curves if c.name == "length")
    assert length.apgr == pytest.approx(m.curves[0].apgr)


def test_rows_without_an_end_tier_are_left_out_and_unlabeled_tiers_dropped() -> None:
    scores = np.array([[0, NAN, 1], [1, NAN, 1], [NAN, NAN, 1]], dtype=np.float64)
    costs = np.tile([1.0, 3.0, 5.0], (3, 1))
    m = metrics(np.full((3, 3), 0.7), scores, scores, costs, TIERS, knob=0.5)
    assert m is not None
    assert m.tiers == (Tier.HAIKU, Tier.OPUS) and m.dropped_tiers == (Tier.SONNET,)
    assert (m.n, m.n_unrouted, m.n_partial) == (2, 1, 0)
    assert m.reference.cheap_quality == 0.5 and m.reference.top_cost == 5.0
    only_one = np.array([[NAN, NAN, 1.0]])
    assert metrics(np.ones((1, 3)), only_one, only_one, costs[:1], TIERS, 0.5) is None


@pytest.mark.parametrize("policy", ["threshold", "utility"])
def test_a_row_without_a_middle_label_is_routed_among_its_labeled_tiers(policy: str) -> None:
    """math-l5 in zeroeval: no sonnet label. Such rows are routed between haiku and opus only
    (never to the tier nobody can score) and reported as their own subset."""
    rng = np.random.default_rng(4)
    n = 60
    scores = (rng.random((n, 3)) < [0.4, 0.6, 0.8]).astype(np.float64)
    scores[n // 2 :, 1] = NAN
    costs = np.tile([1.0, 3.0, 5.0], (n, 1)) * rng.uniform(0.5, 2, (n, 1))
    probs = rng.random((n, 3))
    probs[n // 2 :, 1] = 0.99  # confident on the tier it has no label for: must not matter
    cats = ["three"] * (n // 2) + ["two"] * (n // 2)
    chosen = get_policy("threshold") if policy == "threshold" else UtilityPolicy()
    m = metrics(probs, scores, scores, costs, TIERS, 0.5, categories=cats, policy=chosen)
    assert m is not None
    assert (m.n, m.n_partial, m.n_unrouted) == (n, n // 2, 0)
    for curve in m.curves:
        if curve.name not in ("random", "coin"):
            assert all(p.calls[1] <= 0.5 + 1e-9 for p in curve.points)  # half the rows can
    (two,) = [c for c in m.by_category if c.category == "two"]
    assert two.calls[1] == 0.0 and math.isnan(two.tier_quality[1])
    names = [s.name for s in m.comparison]
    assert names == ["all", "all tiers labeled", "three", "two"]
    assert m.comparison[3].tiers == ("haiku", "opus")
    assert m.comparison[3].method("always_sonnet") is None
    assert m.comparison[2].method("always_sonnet") is not None


def test_oracle_sends_hopeless_turns_to_the_cheapest_tier_the_router_to_the_top() -> None:
    adequate = np.array([[0, 0, 0], [0, 0, 1], [NAN, 1, 1]], dtype=np.float64)
    assert oracle_choice(adequate).tolist() == [0, 2, 1]
    scores, adequate, costs = monotone_case()
    m = metrics(adequate.copy(), scores, adequate, costs, TIERS, knob=0.5)
    assert m is not None
    # Row 4 (no tier adequate): P = 0 everywhere, so the threshold policy escalates to the top.
    assert m.router.cost == pytest.approx(np.mean([1, 1, 3, 5, 5, 3]))
    assert m.router.pgr == 1.0
    assert m.confusion.true_labels[-1] == "none" and m.confusion.counts[-1] == (0, 0, 1)
    assert m.confusion.exact_rate == pytest.approx(5 / 6)  # the "none" row is neither


def test_router_per_category() -> None:
    scores, adequate, costs = monotone_case()
    cats = ["a", "a", "b", "b", "b", "a"]
    m = metrics(adequate.copy(), scores, adequate, costs, TIERS, 0.5, categories=cats)
    assert m is not None
    a, b = m.by_category
    # Category a: rows 0, 1, 5 -> routed to tiers 0, 0, 1 (costs 1, 1, 3 vs top 5 each).
    assert (a.category, a.n, a.calls) == ("a", 3, pytest.approx((2 / 3, 1 / 3, 0)))
    assert a.cost_vs_top == pytest.approx(5 / 15) and a.quality == 1.0
    assert a.tier_quality == pytest.approx((2 / 3, 1.0, 1.0))
    # Category b: rows 2, 3, 4 -> tiers 1, 2, 2 (row 4: nothing adequate, escalated).
    assert b.calls == pytest.approx((0, 1 / 3, 2 / 3)) and b.cost_vs_top == pytest.approx(13 / 15)


class AlwaysTop:
    """A registered-policy stand-in: every turn to the top tier, whatever the threshold."""

    name = "always_top"

    def decide(self, probs, costs, threshold, bounds=None):  # type: ignore[no-untyped-def]
        raise NotImplementedError  # eval replays only the vectorised form

    def choose(self, probs: np.ndarray, costs: np.ndarray, threshold: float, allowed=None):  # type: ignore[no-untyped-def]
        return np.full(len(probs), probs.shape[1] - 1, dtype=np.int64)

    def knobs(self, probs, costs, allowed=None, max_points=400):  # type: ignore[no-untyped-def]
        return np.array([0.0])


def test_routing_metrics_replay_the_policy_they_are_given() -> None:
    scores, adequate, costs = monotone_case()
    m = metrics(adequate.copy(), scores, adequate, costs, TIERS, 0.5, policy=AlwaysTop())
    assert m is not None
    assert m.router.calls == (0.0, 0.0, 1.0) and m.router.pgr == 1.0
    ends = [p for p in m.curves[0].points if p.threshold is None]  # the closing ends
    assert all(p.calls == (0.0, 0.0, 1.0) for p in m.curves[0].points if p not in ends)


def test_every_method_is_routed_with_the_same_policy() -> None:
    """A peer with the router's probabilities has the router's curve, point for point."""
    scores, adequate, costs = monotone_case()
    probs = np.clip(adequate + 0.1, 0, 1)
    for policy in (get_policy("threshold"), UtilityPolicy()):
        m = metrics(probs, scores, adequate, costs, TIERS, 0.5, policy=policy,
                    peers={"twin": probs.copy()})  # fmt: skip
        assert m is not None
        router, twin = m.curve("router"), m.curve("twin")
        assert router is not None and twin is not None
        assert [(p.cost, p.quality) for p in router.points] == [
            (p.cost, p.quality) for p in twin.points
        ]

"""Held-out routing outcomes: the router and its baselines against always-top, and the operating
curve written to manifest.curve. Arrays in, frozen dataclasses out.

Conventions: tier columns are cheapest first (router.core.tiers.TIER_ORDER); `scores` (n, k) are
per-tier quality in [0, 1]; `costs` (n, k) are USD per turn (router.core.economics.turn_costs:
input and output tokens priced). A turn no tier handles adequately has the top tier as its "true"
tier, matching the policy, which escalates when no tier clears the threshold.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from router.core.manifest import CurvePoint
from router.core.policy import BoolArray, FloatArray, IntArray, Policy, cheapest_adequate
from router.core.tier_mix import length_at_mix, random_at_mix, tier_mix


@dataclass(frozen=True)
class RoutingOutcome:
    """One policy on one set of turns. *_share values are relative to always-top."""

    name: str
    n: int
    tier_accuracy: float  # chosen tier == true cheapest-adequate tier
    quality: float  # mean score of the chosen tier
    quality_share: float  # quality / always-top quality
    cost_share: float  # total cost / always-top total cost
    cost_saved: float  # 1 - cost_share
    under_routed: float  # share of turns sent below their cheapest-adequate tier
    over_routed: float  # share of turns sent above it
    tier_mix: tuple[float, ...]  # share of turns per tier, cheapest first


def evaluate_routing(
    name: str,
    chosen: IntArray,
    scores: FloatArray,
    adequate: BoolArray,
    costs: FloatArray,
) -> RoutingOutcome:
    """Quality and cost of sending row i to tier chosen[i], against always sending to the top."""
    chosen = np.asarray(chosen, dtype=np.int64)
    scores = np.asarray(scores, dtype=np.float64)
    n, k = scores.shape
    if n == 0:
        raise ValueError("evaluate_routing needs at least one row")
    truth = cheapest_adequate(adequate)
    quality_share, cost_share = shares(chosen, scores, costs)
    return RoutingOutcome(
        name=name,
        n=n,
        tier_accuracy=float((chosen == truth).mean()),
        quality=float(scores[np.arange(n), chosen].mean()),
        quality_share=quality_share,
        cost_share=cost_share,
        cost_saved=1.0 - cost_share,
        under_routed=float((chosen < truth).mean()),
        over_routed=float((chosen > truth).mean()),
        tier_mix=tier_mix(chosen, k),
    )


def shares(chosen: IntArray, scores: FloatArray, costs: FloatArray) -> tuple[float, float]:
    """(quality share, cost share) of a tier assignment, both relative to always-top."""
    chosen = np.asarray(chosen, dtype=np.int64)
    scores = np.asarray(scores, dtype=np.float64)
    costs = np.asarray(costs, dtype=np.float64)
    rows = np.arange(len(chosen))
    top_quality = float(scores[:, -1].mean())
    top_cost = float(costs[:, -1].sum())
    quality = float(scores[rows, chosen].mean())
    cost = float(costs[rows, chosen].sum())
    return (
        quality / top_quality if top_quality > 0 else float("nan"),
        cost / top_cost if top_cost > 0 else float("nan"),
    )


def routing_report(
    router_chosen: IntArray,
    scores: FloatArray,
    adequate: BoolArray,
    costs: FloatArray,
    lengths: FloatArray,
    seed: int = 0,
) -> list[RoutingOutcome]:
    """The router and its baselines on the same turns: always-cheap, always-top, random and
    length heuristic at the router's own tier mix."""
    n, k = np.asarray(scores).shape
    mix = tier_mix(router_chosen, k)

    def run(name: str, chosen: IntArray) -> RoutingOutcome:
        return evaluate_routing(name, chosen, scores, adequate, costs)

    return [
        run("router", router_chosen),
        run("always_cheap", np.zeros(n, dtype=np.int64)),
        run("always_top", np.full(n, k - 1, dtype=np.int64)),
        run("random_at_mix", random_at_mix(mix, n, seed)),
        run("length_at_mix", length_at_mix(lengths, mix)),
        run("oracle", cheapest_adequate(adequate)),
    ]


@dataclass(frozen=True)
class RoutingRows:
    """Turns routed among their labeled tiers (the top tier must be one, it is the reference);
    `policy_costs` are what the policy believes (predicted answer lengths), `costs` what the
    turns really cost (their recorded answer lengths where known)."""

    probs: FloatArray  # (n, k)
    policy_costs: FloatArray  # (n, k)
    scores: FloatArray  # (n, k), NaN unlabeled
    costs: FloatArray  # (n, k)
    allowed: BoolArray  # (n, k) labeled

    @classmethod
    def of(
        cls,
        probs: FloatArray,
        policy_costs: FloatArray,
        scores: FloatArray,
        costs: FloatArray,
    ) -> RoutingRows:
        scores = np.asarray(scores, dtype=np.float64)
        keep = ~np.isnan(scores[:, -1])
        return cls(
            np.asarray(probs, dtype=np.float64)[keep],
            np.asarray(policy_costs, dtype=np.float64)[keep],
            scores[keep],
            np.asarray(costs, dtype=np.float64)[keep],
            ~np.isnan(scores[keep]),
        )

    def shares(self, chosen: IntArray) -> tuple[float, float]:
        """(quality share, cost share) of a tier assignment, relative to always-top."""
        return shares(chosen, np.nan_to_num(self.scores), self.costs)

    def cheapest(self) -> IntArray:
        out: IntArray = np.argmax(self.allowed, axis=1).astype(np.int64)
        return out


def knob_curve(
    policy: Policy, rows: RoutingRows, max_points: int, knobs: Sequence[float] | None = None
) -> list[CurvePoint]:
    """`policy` on `rows` at `knobs` (default: swept over its own, policy.knobs):
    (knob, quality share, cost share)."""
    if knobs is None:
        knobs = policy.knobs(rows.probs, rows.policy_costs, rows.allowed, max_points=max_points)
    points = []
    for knob in knobs:
        chosen = policy.choose(rows.probs, rows.policy_costs, float(knob), rows.allowed)
        quality, cost = rows.shares(chosen)
        points.append(CurvePoint(float(knob), quality, cost))
    return points


@dataclass(frozen=True)
class CurveSummary:
    apgr: float  # area under PGR over the normalised cost axis (always-cheapest .. always-top)
    saving_at_95: float  # 1 - cost share of the cheapest point keeping 95% of top quality
    n: int


def summarise_curve(curve: Sequence[CurvePoint], rows: RoutingRows) -> CurveSummary:
    """APGR and saving at 95% (eval/curves.py's definitions) of a curve, always-cheapest and
    always-top included; NaN saving when no point keeps 95%."""
    cheap_q, cheap_c = rows.shares(rows.cheapest())
    points = [(c.cost, c.quality) for c in curve] + [(cheap_c, cheap_q), (1.0, 1.0)]
    best: dict[float, float] = {}
    for cost, quality in points:
        best[cost] = max(best.get(cost, -np.inf), quality)
    x = np.asarray(sorted(best))
    y = np.asarray([best[v] for v in x])
    span_q, span_c = 1.0 - cheap_q, 1.0 - cheap_c
    if span_q <= 0 or span_c <= 0:
        apgr = float("nan")
    else:
        xs, ys = (x - cheap_c) / span_c, (y - cheap_q) / span_q
        apgr = float(np.sum((xs[1:] - xs[:-1]) * (ys[1:] + ys[:-1]) / 2))
    keeping = [cost for cost, quality in points if quality >= 0.95 - 1e-12]
    saving = 1.0 - min(keeping) if keeping else float("nan")
    return CurveSummary(apgr, saving, len(rows.probs))


# Below this many fully labeled held-out turns, a quality share's 95% interval is wider than
# +-10 points (0.98 / sqrt(n) at p = 0.5): the numbers say little about the router.
MIN_HELDOUT_TURNS = 100


def small_data_warning(n_turns: int, n_heldout: int, holdout_fraction: float) -> str | None:
    """A sentence for the log and the CLI summary when the held-out set is too small to mean
    anything; None when it is large enough."""
    if n_heldout >= MIN_HELDOUT_TURNS:
        return None
    margin = 0.98 / max(n_heldout, 1) ** 0.5
    enough = int(np.ceil(MIN_HELDOUT_TURNS / holdout_fraction))
    return (
        f"only {n_turns} turns ({n_heldout} held out with every tier labeled): held-out "
        f"quality and cost are +-{min(margin, 1.0):.0%} noise and the heads barely learned; "
        f"train on at least {enough} turns ({MIN_HELDOUT_TURNS} held out) before trusting "
        "this bundle"
    )

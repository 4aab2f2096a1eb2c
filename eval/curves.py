"""Pure routing-curve metrics: arrays in, frozen dataclasses out. No IO, plotting or printing.

A curve is a method's sweep (eval.routing.Routed) on a set of rows. Cost axis: cost_share =
(cost - always-cheapest cost) / (always-top cost - always-cheapest cost); quality axis: PGR =
(quality - always-cheapest) / (always-top - always-cheapest), the cheapest and top tiers being
each row's cheapest and most capable routing tier (labeled on every routed row). With two tiers
and equal-length turns cost_share is RouteLLM's "% calls to the strong model"; with three a
middle-tier call counts as the part of the price gap it spends.

- APGR: area under PGR over cost_share (trapezoid over the points sorted by cost, the best PGR
  at equal cost); a random mix of the two ends scores 0.5.
- saving: 1 - cost / always-top cost of the cheapest point whose quality reaches `share`
  (default 95%) of always-top quality: what the method saves at that quality.
- CPT(x): smallest cost share recovering x of the gap; AIQ (RouterBench): area under the
  non-decreasing convex hull of (cost, quality) over the cheap..top cost range.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from eval.routing import Routed

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.integer[Any]]
# Quality share of always-top at which the cost saving is read (issue 8's headline number).
QUALITY_SHARE = 0.95


@dataclass(frozen=True)
class Reference:
    """Anchors of the normalised axes: the always-cheapest and always-top policies."""

    cheap_quality: float
    top_quality: float
    cheap_cost: float
    top_cost: float

    def pgr(self, quality: float) -> float:
        """Performance gap recovered: 0 at always-cheapest quality, 1 at always-top."""
        gap = self.top_quality - self.cheap_quality
        return (quality - self.cheap_quality) / gap if gap > 0 else float("nan")

    def cost_share(self, cost: float) -> float:
        span = self.top_cost - self.cheap_cost
        return (cost - self.cheap_cost) / span if span > 0 else float("nan")


def reference(scores: FloatArray, costs: FloatArray) -> Reference:
    """From (n, k) routing-set arrays whose first and last columns are labeled on every row."""
    return Reference(
        float(scores[:, 0].mean()),
        float(scores[:, -1].mean()),
        float(costs[:, 0].mean()),
        float(costs[:, -1].mean()),
    )


@dataclass(frozen=True)
class PolicyPoint:
    """A method at one setting, in absolute units and on the normalised axes."""

    name: str
    threshold: float | None  # the policy's knob; None for fixed tiers and baselines' ends
    quality: float  # mean score of the chosen tier
    cost: float  # mean USD per turn
    cost_share: float
    pgr: float
    calls: tuple[float, ...]  # share of turns sent to each routing tier


@dataclass(frozen=True)
class Curve:
    """A method swept from always-cheapest to always-top; points sorted by cost."""

    name: str
    points: tuple[PolicyPoint, ...]
    apgr: float
    cpt50: float
    cpt80: float
    aiq: float
    saving: float  # cost saving vs always-top at QUALITY_SHARE of its quality


def xy(cost_share: FloatArray, pgr: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Points sorted by cost share, keeping the best PGR at equal cost."""
    x, y = np.asarray(cost_share, dtype=np.float64), np.asarray(pgr, dtype=np.float64)
    order = np.lexsort((-y, x))
    x, y = x[order], y[order]
    keep = np.concatenate([[True], x[1:] != x[:-1]]) if len(x) else np.zeros(0, dtype=bool)
    return x[keep], y[keep]


def apgr_of(cost_share: FloatArray, pgr: FloatArray) -> float:
    x, y = xy(cost_share, pgr)
    if len(x) < 2 or np.isnan(x).any() or np.isnan(y).any():
        return float("nan")
    return float(np.sum((x[1:] - x[:-1]) * (y[1:] + y[:-1]) / 2))


def saving_of(
    quality: FloatArray, cost: FloatArray, ref: Reference, share: float = QUALITY_SHARE
) -> float:
    """1 - cost / always-top cost of the cheapest point with quality >= share x top quality."""
    ok = np.asarray(quality) >= share * ref.top_quality - 1e-12
    if not ok.any() or ref.top_cost <= 0:
        return float("nan")
    return float(1.0 - np.asarray(cost)[ok].min() / ref.top_cost)


def apgr(points: Sequence[PolicyPoint]) -> float:
    """Area under PGR over cost_share in [0, 1] (trapezoid); 0.5 for a random mix of the ends."""
    return apgr_of(np.asarray([p.cost_share for p in points]), np.asarray([p.pgr for p in points]))


def cpt(points: Sequence[PolicyPoint], target: float) -> float:
    """Smallest cost_share at which the piecewise-linear PGR curve reaches `target`; NaN if never."""
    x, y = xy(np.asarray([p.cost_share for p in points]), np.asarray([p.pgr for p in points]))
    for i in range(len(x)):
        if y[i] >= target:
            if i == 0 or y[i] == y[i - 1]:
                return float(x[i])
            frac = (target - y[i - 1]) / (y[i] - y[i - 1])
            return float(x[i - 1] + max(frac, 0.0) * (x[i] - x[i - 1]))
    return float("nan")


def upper_hull(x: FloatArray, y: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Non-decreasing upper convex hull of points sorted by x (what mixing policies can reach)."""
    hull: list[tuple[float, float]] = []
    for px, py in zip(x.tolist(), y.tolist(), strict=True):
        while len(hull) >= 2:
            (ax, ay), (bx, by) = hull[-2], hull[-1]
            if (bx - ax) * (py - ay) - (by - ay) * (px - ax) >= 0:  # b is not above a->p
                hull.pop()
            else:
                break
        hull.append((px, py))
    hx, hy = np.asarray(hull).T
    peak = int(np.argmax(hy))
    # Past the best point, paying more never has to cost quality: keep the peak level.
    return np.append(hx[: peak + 1], x[-1]), np.append(hy[: peak + 1], hy[peak])


def aiq(points: Sequence[PolicyPoint], ref: Reference) -> float:
    """RouterBench's AIQ: area under the non-decreasing convex hull of (cost, quality), divided by
    the always-cheapest..always-top cost range. Units are quality."""
    span = ref.top_cost - ref.cheap_cost
    if span <= 0 or not points:
        return float("nan")
    pts = sorted((p.cost, p.quality) for p in points)
    hx, hy = upper_hull(*(np.asarray(v, dtype=np.float64) for v in zip(*pts, strict=True)))
    return float(np.sum((hx[1:] - hx[:-1]) * (hy[1:] + hy[:-1]) / 2) / span)


def make_point(
    name: str, threshold: float | None, quality: float, cost: float, calls: Sequence[float],
    ref: Reference,
) -> PolicyPoint:  # fmt: skip
    knob = None if threshold is None or np.isnan(threshold) else float(threshold)
    return PolicyPoint(
        name, knob, quality, cost, ref.cost_share(cost), ref.pgr(quality),
        tuple(float(c) for c in calls),
    )  # fmt: skip


def curve_of(
    routed: Routed, ref: Reference, rows: IntArray | None = None, share: float = QUALITY_SHARE
) -> Curve:
    """`routed` on `rows` (default all) against `ref` (computed on the same rows)."""
    q = routed.quality if rows is None else routed.quality[:, rows]
    c = routed.cost if rows is None else routed.cost[:, rows]
    quality, cost = q.mean(axis=1, dtype=np.float64), c.mean(axis=1, dtype=np.float64)
    calls = routed.calls  # expected-value baselines: the mix they were built at
    if routed.choices is not None:
        ch = routed.choices if rows is None else routed.choices[:, rows]
        calls = np.stack([(ch == j).mean(axis=1) for j in range(calls.shape[1])], axis=1)
    points = [
        make_point(routed.name, routed.knobs[p], quality[p], cost[p], calls[p], ref)
        for p in range(len(quality))
    ]
    ordered = tuple(sorted(points, key=lambda p: (p.cost, p.quality)))
    return Curve(
        routed.name,
        ordered,
        apgr(ordered),
        cpt(ordered, 0.5),
        cpt(ordered, 0.8),
        aiq(ordered, ref),
        saving_of(quality, cost, ref, share),
    )

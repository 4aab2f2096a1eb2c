"""Pure: the router against every method over repeated cross-validation, and issue 8's targets.

Each repeat routes every turn once, on its pooled out-of-fold predictions (eval.folds), so the
repeats share their rows and subsets. A method's number is the mean over repeats of its APGR
(or saving at `share` of always-top quality) on a subset. Intervals are paired bootstrap
intervals of that mean: one set of resample weights per subset (turns drawn with replacement,
eval.bootstrap), applied to every method in every repeat; each resample's value is averaged over
the repeats. Arrays in, frozen dataclasses out.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from eval.bootstrap import Interval, interval, resample_weights, sample_metrics
from eval.comparison import Kind, Method, SubsetResult, compare_subset, subsets
from eval.curves import QUALITY_SHARE
from eval.routing import RoutingSet

FloatArray = NDArray[np.float64]
# Issue 8, item 6: the router's APGR must beat the best peer's by this much, and its saving at
# 95% of always-top quality must close this share of the gap from the best peer to the oracle.
APGR_MARGIN = 0.05
GAP_SHARE = 0.5


@dataclass(frozen=True)
class RepeatedMethod:
    name: str
    kind: Kind
    apgr: float  # mean over repeats
    saving: float  # mean over repeats, at `share` of always-top quality
    apgr_repeats: tuple[float, ...]
    saving_repeats: tuple[float, ...]
    apgr_ci: Interval | None
    saving_ci: Interval | None
    router_minus_apgr: Interval | None  # paired: router - this method; None for the router
    router_minus_saving: Interval | None


@dataclass(frozen=True)
class RepeatedSubset:
    name: str
    kind: str  # "pooled", "complete" or "category" (eval.comparison.subsets)
    n: int
    tiers: tuple[str, ...]  # routing tiers labeled on every turn of the subset
    methods: tuple[RepeatedMethod, ...]
    best_peer_apgr: str | None  # the learned peer with the best mean APGR
    best_peer_saving: str | None
    # (router - best peer saving) / (oracle - best peer saving): the share of the gap closed.
    gap_closed: Interval | None

    def method(self, name: str) -> RepeatedMethod | None:
        return next((m for m in self.methods if m.name == name), None)


def _mean(values: Sequence[float]) -> float:
    return float(np.mean(values)) if values else float("nan")


def _best(methods: Sequence[RepeatedMethod], key: str) -> str | None:
    peers = [m for m in methods if m.kind == "peer" and np.isfinite(getattr(m, key))]
    return max(peers, key=lambda m: getattr(m, key)).name if peers else None


def _gap(router: FloatArray, peer: FloatArray, oracle: FloatArray) -> FloatArray:
    with np.errstate(divide="ignore", invalid="ignore"):
        out: FloatArray = (router - peer) / (oracle - peer)
    return out


def repeated_subset(
    repeats: Sequence[Sequence[Method]],
    rs: RoutingSet,
    name: str,
    kind: str,
    rows: NDArray[np.int64],
    n_boot: int,
    seed: int,
    tier_names: Sequence[str],
    share: float = QUALITY_SHARE,
) -> RepeatedSubset:
    """One subset over every repeat; `repeats[r]` are repeat r's methods, in the same order."""
    per: list[SubsetResult] = [
        compare_subset(methods, rs, name, kind, rows, 0, seed, tier_names, share)
        for methods in repeats
    ]
    names = [m.name for m in per[0].methods]
    samples: dict[str, FloatArray] = {}
    if n_boot > 0:
        # The seed compare_subset uses for this subset: a single repeat's intervals match.
        weights = resample_weights(len(rows), n_boot, seed + zlib.crc32(name.encode()))
        s, c = np.nan_to_num(rs.scores[rows]), rs.costs[rows]
        ends_q, ends_c = s[:, [0, -1]], c[:, [0, -1]]
        for m in names:
            runs = [
                sample_metrics(next(x for x in methods if x.name == m).routed, rows, ends_q,
                               ends_c, weights, share)
                for methods in repeats
            ]  # fmt: skip
            samples[m] = np.mean(runs, axis=0)
    apgr = {m: [r.method(m).apgr for r in per] for m in names}  # type: ignore[union-attr]
    saving = {m: [r.method(m).saving for r in per] for m in names}  # type: ignore[union-attr]
    router = samples.get("router")
    results = []
    for m in names:
        own = samples.get(m)
        paired = router is not None and own is not None and m != "router"
        a, sv = _mean(apgr[m]), _mean(saving[m])
        ra, rsv = _mean(apgr.get("router", [])), _mean(saving.get("router", []))
        results.append(
            RepeatedMethod(
                m,
                per[0].method(m).kind,  # type: ignore[union-attr]
                a,
                sv,
                tuple(apgr[m]),
                tuple(saving[m]),
                interval(own[:, 0], a) if own is not None else None,
                interval(own[:, 1], sv) if own is not None else None,
                interval(router[:, 0] - own[:, 0], ra - a) if paired else None,  # type: ignore[index]
                interval(router[:, 1] - own[:, 1], rsv - sv) if paired else None,  # type: ignore[index]
            )
        )
    best_saving = _best(results, "saving")
    gap = None
    by_name = {r.name: r for r in results}
    if best_saving and "router" in by_name and "oracle" in by_name:
        r, p, o = by_name["router"], by_name[best_saving], by_name["oracle"]
        point = float(_gap(np.asarray(r.saving), np.asarray(p.saving), np.asarray(o.saving)))
        if router is not None:
            boot = _gap(router[:, 1], samples[best_saving][:, 1], samples["oracle"][:, 1])
            gap = interval(boot, point)
        elif np.isfinite(point):
            gap = Interval(point, point, point)
    return RepeatedSubset(
        name, kind, len(rows), per[0].tiers, tuple(results), _best(results, "apgr"), best_saving,
        gap,
    )  # fmt: skip


def compare_repeats(
    repeats: Sequence[Sequence[Method]],
    rs: RoutingSet,
    categories: NDArray[np.str_],
    n_boot: int,
    seed: int,
    tier_names: Sequence[str],
    share: float = QUALITY_SHARE,
) -> tuple[RepeatedSubset, ...]:
    """Every subset (eval.comparison.subsets: pooled, complete-label, each category) over the
    repeats; `categories` (rs.n,) for the routed rows, `tier_names` its tiers."""
    if not repeats:
        raise ValueError("no repeats to compare")
    return tuple(
        repeated_subset(repeats, rs, name, kind, rows, n_boot, seed, tier_names, share)
        for name, kind, rows in subsets(rs, categories)
    )


@dataclass(frozen=True)
class Targets:
    """Issue 8 (item 6) on one subset: met or missed, and by how much."""

    best_peer_apgr: str
    apgr_gain: Interval  # router - best peer APGR, paired
    apgr_met: bool  # gain >= APGR_MARGIN
    apgr_short: float  # how much more gain the target needs (0 when met)
    best_peer_saving: str
    saving_gain: Interval  # router - best peer saving, paired
    oracle_saving: float
    gap_closed: Interval | None  # share of the best-peer-to-oracle saving gap the router closes
    saving_met: bool  # gap_closed >= GAP_SHARE
    saving_short: float  # saving (share of always-top cost) still needed (0 when met)
    # Whether the paired intervals of router - best peer exclude zero.
    apgr_ci_excludes_zero: bool
    saving_ci_excludes_zero: bool


def targets(subset: RepeatedSubset) -> Targets | None:
    """None without a peer, the router or the oracle, or without bootstrap intervals."""
    router, oracle = subset.method("router"), subset.method("oracle")
    if router is None or oracle is None or not subset.best_peer_apgr:
        return None
    best_a = subset.method(subset.best_peer_apgr)
    best_s = subset.method(subset.best_peer_saving) if subset.best_peer_saving else None
    if best_a is None or best_s is None:
        return None
    gain_a, gain_s = best_a.router_minus_apgr, best_s.router_minus_saving
    if gain_a is None or gain_s is None:
        return None
    needed = best_s.saving + GAP_SHARE * (oracle.saving - best_s.saving)
    closed = subset.gap_closed.estimate if subset.gap_closed else float("nan")
    return Targets(
        best_peer_apgr=best_a.name,
        apgr_gain=gain_a,
        apgr_met=gain_a.estimate >= APGR_MARGIN,
        apgr_short=max(0.0, APGR_MARGIN - gain_a.estimate),
        best_peer_saving=best_s.name,
        saving_gain=gain_s,
        oracle_saving=oracle.saving,
        gap_closed=subset.gap_closed,
        saving_met=bool(closed >= GAP_SHARE),
        saving_short=max(0.0, needed - router.saving),
        apgr_ci_excludes_zero=gain_a.excludes_zero,
        saving_ci_excludes_zero=gain_s.excludes_zero,
    )

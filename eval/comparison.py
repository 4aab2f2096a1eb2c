"""Pure: the router against every peer and baseline on the same rows, with paired bootstrap
intervals, pooled and per subset. Arrays in, frozen dataclasses out.

Subsets: "all" (every routed turn), "all tiers labeled" (the turns labeled for every routing
tier, when some are not: the complete-label problem), and each category (task). A fixed tier is
listed only where it is labeled on every turn of the subset. The best peer of a subset is the
learned peer with the highest point estimate (APGR, and separately saving); "router - best peer"
is the paired interval of that difference.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from eval.bootstrap import Interval, interval, resample_weights, sample_metrics
from eval.curves import QUALITY_SHARE, curve_of, reference
from eval.routing import Routed, RoutingSet

IntArray = NDArray[np.int64]
Kind = Literal["router", "peer", "baseline", "reference"]
ALL, COMPLETE = "all", "all tiers labeled"


@dataclass(frozen=True)
class Method:
    """A method to compare: its sweep on the routing set, and what kind of method it is
    (router, a learned peer, a baseline that needs no learning, or a reference such as a fixed
    tier or the oracle)."""

    name: str
    kind: Kind
    routed: Routed
    column: int | None = None  # fixed tiers: the tier column (listed only where labeled)


@dataclass(frozen=True)
class MethodResult:
    name: str
    kind: Kind
    apgr: float
    saving: float  # cost saving vs always-top at QUALITY_SHARE of its quality
    apgr_ci: Interval | None
    saving_ci: Interval | None
    router_minus_apgr: Interval | None  # paired: router - this method; None for the router
    router_minus_saving: Interval | None
    quality_share: float  # of its cheapest point reaching the target (or NaN)


@dataclass(frozen=True)
class SubsetResult:
    name: str
    kind: Literal["pooled", "complete", "category"]
    n: int
    tiers: tuple[str, ...]  # routing tiers labeled on every turn of the subset
    methods: tuple[MethodResult, ...]
    best_peer_apgr: str | None
    best_peer_saving: str | None

    def method(self, name: str) -> MethodResult | None:
        return next((m for m in self.methods if m.name == name), None)


def subsets(rs: RoutingSet, categories: NDArray[np.str_]) -> list[tuple[str, str, IntArray]]:
    """(name, kind, rows) of the pooled set, the complete-label set (when it differs) and each
    category (when there are several)."""
    rows = np.arange(rs.n)
    out: list[tuple[str, str, IntArray]] = [(ALL, "pooled", rows)]
    complete = np.flatnonzero(rs.available.all(axis=1))
    if 0 < len(complete) < rs.n:
        out.append((COMPLETE, "complete", complete))
    names = sorted(set(categories.tolist()))
    if len(names) > 1:
        out += [(c, "category", np.flatnonzero(categories == c)) for c in names]
    return out


def _best(results: Sequence[MethodResult], key: str) -> str | None:
    peers = [r for r in results if r.kind == "peer" and np.isfinite(getattr(r, key))]
    return max(peers, key=lambda r: getattr(r, key)).name if peers else None


def compare_subset(
    methods: Sequence[Method],
    rs: RoutingSet,
    name: str,
    kind: str,
    rows: IntArray,
    n_boot: int,
    seed: int,
    tier_names: Sequence[str],
    share: float = QUALITY_SHARE,
) -> SubsetResult:
    labeled = rs.available[rows].all(axis=0)
    usable = [m for m in methods if m.column is None or labeled[m.column]]
    s, c = np.nan_to_num(rs.scores[rows]), rs.costs[rows]
    ref = reference(s, c)
    ends_q, ends_c = s[:, [0, -1]], c[:, [0, -1]]
    samples: dict[str, NDArray[np.float64]] = {}
    if n_boot > 0:
        weights = resample_weights(len(rows), n_boot, seed + zlib.crc32(name.encode()))
        samples = {
            m.name: sample_metrics(m.routed, rows, ends_q, ends_c, weights, share) for m in usable
        }
    curves = {m.name: curve_of(m.routed, ref, rows, share) for m in usable}
    values = {
        name: (float("nan") if len(c.points) == 1 else c.apgr, c.saving)
        for name, c in curves.items()
    }
    router = samples.get("router")
    mine = values.get("router", (float("nan"), float("nan")))
    results = []
    for m in usable:
        curve = curves[m.name]
        reaching = [p for p in curve.points if p.quality >= share * ref.top_quality - 1e-12]
        q_share = (
            min(reaching, key=lambda p: p.cost).quality / ref.top_quality
            if reaching and ref.top_quality > 0
            else float("nan")
        )
        apgr, saving = values[m.name]
        own = samples.get(m.name)
        paired = router is not None and own is not None and m.name != "router"
        results.append(
            MethodResult(
                m.name,
                m.kind,
                apgr,
                saving,
                interval(own[:, 0], apgr) if own is not None else None,
                interval(own[:, 1], saving) if own is not None else None,
                interval(router[:, 0] - own[:, 0], mine[0] - apgr) if paired else None,  # type: ignore[index]
                interval(router[:, 1] - own[:, 1], mine[1] - saving) if paired else None,  # type: ignore[index]
                q_share,
            )
        )
    tiers = tuple(tier_names[int(j)] for j in np.flatnonzero(labeled))
    return SubsetResult(
        name,
        kind,  # type: ignore[arg-type]
        len(rows),
        tiers,
        tuple(results),
        _best(results, "apgr"),
        _best(results, "saving"),
    )


def compare(
    methods: Sequence[Method],
    rs: RoutingSet,
    categories: NDArray[np.str_],
    n_boot: int,
    seed: int,
    tier_names: Sequence[str],
    share: float = QUALITY_SHARE,
) -> tuple[SubsetResult, ...]:
    """Every subset's table; `categories` (rs.n,) for the routed rows, `tier_names` its tiers."""
    return tuple(
        compare_subset(methods, rs, name, kind, rows, n_boot, seed, tier_names, share)
        for name, kind, rows in subsets(rs, categories)
    )

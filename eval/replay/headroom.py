"""How much any policy that keeps tool loops pinned could save, knowing the whole session in
advance, under the router's own P(adequate) estimates: every choice of tier at each loop head
(the turns the router decides; loop turns follow their head), priced with the cache simulation;
the cheapest schedule whose predicted quality stays >= a share of always-Opus's. A bound for
diagnosis, not a policy: it sees the future (loop lengths, compactions, cache breaks)."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from eval.replay.cache import SessionShape, simulate
from eval.replay.costs import Pricer
from router.tiers import TIER_ORDER, Tier

# 3^6 = 729 schedules of a whole session: a second or two; more heads are not searched.
MAX_HEADS = 6


@dataclass(frozen=True)
class Headroom:
    usd: float
    quality_vs_opus: float
    heads: tuple[int, ...]  # call index of each loop head
    tiers: tuple[Tier, ...]  # the tier chosen at each head


def best_schedule(
    shape: SessionShape,
    probs: NDArray[np.float64],
    loop_turn: NDArray[np.bool_],
    models: Sequence[str],
    pricer: Pricer,
    quality_floor: float,
) -> Headroom | None:
    """None when the session has more than MAX_HEADS loop heads. `models`: one per tier in
    TIER_ORDER; `probs`: (n, n_tiers) P(adequate), the last column the top tier's."""
    heads = [k for k in range(shape.n) if k == 0 or not loop_turn[k]]
    if len(heads) > MAX_HEADS:
        return None
    head_of = np.searchsorted(heads, np.arange(shape.n), side="right") - 1
    top = float(probs[:, -1].sum())
    best: Headroom | None = None
    for choice in itertools.product(range(len(TIER_ORDER)), repeat=len(heads)):
        column = np.asarray(choice)[head_of]
        quality = float(probs[np.arange(shape.n), column].sum()) / top if top > 0 else 1.0
        if quality < quality_floor:
            continue
        trace = simulate(shape, [models[c] for c in column], pricer.min_tokens)
        usd = float(pricer.usd(trace).sum())
        if best is None or usd < best.usd:
            tiers = tuple(TIER_ORDER[c] for c in choice)
            best = Headroom(usd, quality, tuple(heads), tiers)
    return best

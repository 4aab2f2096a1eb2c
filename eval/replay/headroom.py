"""How much a policy that keeps tool loops pinned could save, knowing the whole session in
advance, under the router's own P(adequate) estimates: every choice of tier at each loop head
(the turns the router decides; loop turns follow their head) is priced with the cache
simulation. A bound for diagnosis, not a policy: it sees the future (loop lengths, compactions,
cache breaks). Searched twice: over any tier at each head, and over the tiers the policy's own
rule allows there (P(adequate) >= threshold, else the top tier)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from eval.replay.cache import SessionShape, simulate
from eval.replay.costs import Pricer
from router.core.tiers import TIER_ORDER, Tier

if TYPE_CHECKING:  # strategies calls search: a cycle in annotations only
    from eval.replay.strategies import SessionReplay

# 3^6 = 729 schedules of a whole session: a second or two; more heads are not searched.
MAX_HEADS = 6


@dataclass(frozen=True)
class Schedule:
    usd: float
    quality_vs_opus: float  # router's predicted quality, share of always-Opus's
    tiers: tuple[Tier, ...]  # the tier chosen at each head


@dataclass(frozen=True)
class Headroom:
    heads: tuple[int, ...]  # call index of each loop head
    best: Schedule | None  # cheapest at >= the quality floor, any tier at any head
    best_in_threshold: Schedule | None  # ... with only tiers the threshold allows at each head
    cheapest_in_threshold: Schedule  # the cheapest the threshold allows, whatever its quality


def search(
    replayed: SessionReplay, shape: SessionShape, pricer: Pricer, quality_floor: float
) -> Headroom | None:
    """The bound of a replayed session under its router's P(adequate) (replayed.probs), tool-loop
    pins and threshold; each tier is served by its model in pricer.settings. None when the
    session has more than MAX_HEADS loop heads."""
    probs, loop_turn, threshold = replayed.probs, replayed.loop_turn, replayed.threshold
    heads = [k for k in range(shape.n) if k == 0 or not loop_turn[k]]
    if len(heads) > MAX_HEADS:
        return None
    models = pricer.tier_models
    top_tier = len(TIER_ORDER) - 1
    allowed = [
        {t for t in range(len(TIER_ORDER)) if probs[k, t] >= threshold} or {top_tier} for k in heads
    ]
    head_of = np.searchsorted(heads, np.arange(shape.n), side="right") - 1
    top = float(probs[:, -1].sum())
    best = best_in = cheapest_in = None
    for choice in itertools.product(range(len(TIER_ORDER)), repeat=len(heads)):
        column = np.asarray(choice)[head_of]
        quality = float(probs[np.arange(shape.n), column].sum()) / top if top > 0 else 1.0
        in_threshold = all(c in ok for c, ok in zip(choice, allowed, strict=True))
        if quality < quality_floor and not in_threshold:
            continue
        trace = simulate(shape, [models[c] for c in column], pricer.min_tokens)
        found = Schedule(
            float(pricer.usd(trace).sum()), quality, tuple(TIER_ORDER[c] for c in choice)
        )
        if quality >= quality_floor and (best is None or found.usd < best.usd):
            best = found
        if in_threshold and quality >= quality_floor:
            if best_in is None or found.usd < best_in.usd:
                best_in = found
        if in_threshold and (cheapest_in is None or found.usd < cheapest_in.usd):
            cheapest_in = found
    assert cheapest_in is not None  # the all-allowed schedule always exists
    return Headroom(tuple(heads), best, best_in, cheapest_in)

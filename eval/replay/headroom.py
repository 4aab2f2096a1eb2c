"""How much a policy that keeps tool loops pinned could save, knowing the whole session in
advance, under the router's own P(adequate) estimates: every choice of tier at each loop head
(the turns the router decides; loop turns follow their head) is priced with the cache
simulation. A bound for diagnosis, not a policy: it sees the future (loop lengths, compactions,
cache breaks). Searched twice: over any tier at each head, and over the tiers tierwise's policy
chose among there (threshold: P(adequate) >= threshold, else the top tier; utility: the tiers
on the head's efficient frontier, as the cache-aware router priced it)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from eval.replay.cache import SessionShape, simulate
from eval.replay.costs import Pricer
from router.core.tiers import TIER_ORDER, Tier


class Routed(Protocol):
    """What the search reads of a replayed session (eval.replay.strategies.SessionReplay)."""

    @property
    def probs(self) -> NDArray[np.float64]: ...  # (n, k) P(adequate) of every call

    @property
    def loop_turn(self) -> NDArray[np.bool_]: ...  # (n,) the call continues a tool loop

    @property
    def choosable(self) -> NDArray[np.bool_]: ...  # (n, k) tiers the policy chose among


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
    best_in_policy: Schedule | None  # ... with only tiers the policy chose among at each head
    cheapest_in_policy: Schedule  # the cheapest of those, whatever its quality


def search(
    replayed: Routed, shape: SessionShape, pricer: Pricer, quality_floor: float
) -> Headroom | None:
    """The bound of a replayed session under its router's P(adequate) (replayed.probs), tool-loop
    pins and the tiers its policy chose among (replayed.choosable); each tier is served by its
    model in pricer.settings. None when the session has more than MAX_HEADS loop heads."""
    probs, loop_turn = replayed.probs, replayed.loop_turn
    heads = [k for k in range(shape.n) if k == 0 or not loop_turn[k]]
    if len(heads) > MAX_HEADS:
        return None
    models = pricer.tier_models
    allowed = [set(np.flatnonzero(replayed.choosable[k]).tolist()) for k in heads]
    head_of = np.searchsorted(heads, np.arange(shape.n), side="right") - 1
    top = float(probs[:, -1].sum())
    best = best_in = cheapest_in = None
    for choice in itertools.product(range(len(TIER_ORDER)), repeat=len(heads)):
        column = np.asarray(choice)[head_of]
        quality = float(probs[np.arange(shape.n), column].sum()) / top if top > 0 else 1.0
        in_policy = all(c in ok for c, ok in zip(choice, allowed, strict=True))
        if quality < quality_floor and not in_policy:
            continue
        trace = simulate(shape, [models[c] for c in column], pricer.min_tokens)
        found = Schedule(
            float(pricer.usd(trace).sum()), quality, tuple(TIER_ORDER[c] for c in choice)
        )
        if quality >= quality_floor and (best is None or found.usd < best.usd):
            best = found
        if in_policy and quality >= quality_floor:
            if best_in is None or found.usd < best_in.usd:
                best_in = found
        if in_policy and (cheapest_in is None or found.usd < cheapest_in.usd):
            cheapest_in = found
    assert cheapest_in is not None  # the all-allowed schedule always exists
    return Headroom(tuple(heads), best, best_in, cheapest_in)

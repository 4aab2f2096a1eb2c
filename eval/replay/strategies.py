"""The strategies a session is replayed under, each a model per call priced with the cache:

- recorded: the models the session really used (Claude sources only);
- always-haiku / always-sonnet / always-opus: one tier for every call, with caching;
- per-turn: the router's choice with no agent context; a switch re-writes the prefix;
- tierwise: the router's cache-aware choice (session, previous model and usage), as live.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from eval.replay.cache import CacheTrace, SessionShape, shape_of, simulate
from eval.replay.costs import Pricer
from eval.replay.headroom import Headroom, search
from eval.replay.routing import route_cache_aware, route_per_turn
from eval.replay.session import ReplaySession
from router.core.schemas import RouteDecision
from router.core.service import RoutingService
from router.core.tiers import TIER_ORDER, Tier

STRATEGIES: tuple[str, ...] = (
    "recorded",
    *(f"always-{t.value}" for t in TIER_ORDER),
    "per-turn",
    "tierwise",
)
LABELS: dict[str, str] = {
    "recorded": "as recorded",
    "always-haiku": "always Haiku",
    "always-sonnet": "always Sonnet",
    "always-opus": "always Opus",
    "per-turn": "per-turn routing (cache-blind)",
    "tierwise": "tierwise (cache-aware)",
}
ROUTED = ("per-turn", "tierwise")


@dataclass(frozen=True)
class StrategyRun:
    """One strategy over one session; arrays have one row per call."""

    name: str
    trace: CacheTrace
    tiers: tuple[Tier | None, ...]
    usd: NDArray[np.float64]
    switch_usd: NDArray[np.float64]  # write dollars of the prefix each switch threw away
    quality: NDArray[np.float64]  # router's P(adequate) of the serving tier; NaN: no tier

    @property
    def total_usd(self) -> float:
        return float(self.usd.sum())

    @property
    def switches(self) -> int:
        return int(self.trace.switched.sum())


@dataclass(frozen=True)
class SessionReplay:
    session: ReplaySession
    probs: NDArray[np.float64]  # (n, n_tiers) router P(adequate), columns in TIER_ORDER
    runs: dict[str, StrategyRun]
    # per-turn routing's dollars if every model could read every model's cache: what a
    # cache-blind view of routing expects to pay
    per_turn_free_usd: float
    tierwise_reasons: tuple[str, ...]
    loop_turn: NDArray[np.bool_]  # pinned to the previous tier by the router's tool-loop rule
    thinking: NDArray[np.bool_]  # ... with thinking blocks, which must go back to their model
    router_prefix: NDArray[np.int64]  # cached prefix tierwise's router priced at each call
    headroom: Headroom | None  # long sessions only (eval.replay.headroom)
    threshold: float  # the router's P(adequate) threshold for these turns


def _probs(decisions: list[RouteDecision]) -> NDArray[np.float64]:
    rows = [[d.probabilities.get(t, np.nan) for t in TIER_ORDER] for d in decisions]
    return np.asarray(rows, dtype=float).reshape(len(decisions), len(TIER_ORDER))


def _run(name: str, trace: CacheTrace, pricer: Pricer, probs: NDArray[np.float64]) -> StrategyRun:
    tiers = tuple(pricer.tier(m) for m in trace.models)
    quality = np.asarray(
        [np.nan if t is None else probs[k, t.rank] for k, t in enumerate(tiers)], dtype=float
    ).reshape(len(tiers))
    return StrategyRun(name, trace, tiers, pricer.usd(trace), pricer.switch_usd(trace), quality)


def replay_session(
    session: ReplaySession,
    service: RoutingService,
    pricer: Pricer,
    on_call: Callable[[], None] | None = None,
    quality_floor: float = 0.95,
) -> SessionReplay:
    """Every strategy over one session (see the module docstring); for a long session, also
    the headroom bound at `quality_floor` of always-Opus's predicted quality."""
    shape: SessionShape = shape_of(
        session.calls, session.ttl_s, session.usage_recorded, pricer.min_tokens
    )
    per_turn = route_per_turn(service, session)
    probs = _probs(per_turn)
    aware = route_cache_aware(service, session, shape, pricer.min_tokens, on_call)
    runs: dict[str, StrategyRun] = {}
    recorded = [c.model for c in session.calls]
    if all(pricer.tier(m) is not None for m in recorded):
        trace = simulate(shape, recorded, pricer.min_tokens)
        runs["recorded"] = _run("recorded", trace, pricer, probs)
    for tier, model in zip(TIER_ORDER, pricer.tier_models, strict=True):
        trace = simulate(shape, [model] * session.n_calls, pricer.min_tokens)
        runs[f"always-{tier.value}"] = _run(f"always-{tier.value}", trace, pricer, probs)
    per_turn_models = [d.model for d in per_turn]
    trace = simulate(shape, per_turn_models, pricer.min_tokens)
    runs["per-turn"] = _run("per-turn", trace, pricer, probs)
    runs["tierwise"] = _run("tierwise", aware.trace, pricer, probs)
    free = simulate(shape, per_turn_models, pricer.min_tokens, shared_cache=True)
    replayed = SessionReplay(
        session=session,
        probs=probs,
        runs=runs,
        per_turn_free_usd=float(pricer.usd(free).sum()),
        tierwise_reasons=tuple(d.reason for d in aware.decisions),
        loop_turn=aware.loop_turn,
        thinking=aware.thinking,
        router_prefix=aware.prefix,
        headroom=None,
        threshold=per_turn[0].threshold if per_turn else float("nan"),
    )
    if session.is_long:
        bound = search(replayed, shape, pricer, quality_floor)
        replayed = dataclasses.replace(replayed, headroom=bound)
    return replayed

"""Replayed calls through the service's own RoutingService (route / route_many, as POST /route
calls them): per-turn with no agent context, and cache-aware with session_id, previous_model and
previous_usage, one call at a time, each seeing the cache its predecessors left."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from eval.replay.cache import CacheSim, CacheTrace, SessionShape, call_tokens, trace_of
from eval.replay.session import CallTokens, ReplayCall, ReplaySession
from router.agent.pinning import pin_reason, turn_has_thinking
from router.agent.routing import AgentRouting
from router.agent.stores import memory_stores
from router.core.bundle import ModelBundle, load_bundle
from router.core.embedder import Embedder
from router.core.schemas import RouteDecision, RouteRequest, Usage
from router.core.service import RoutingService
from router.settings import Settings


class MemoEmbedder:
    """An Embedder that embeds each distinct text once. OnnxEmbedder embeds every text on its
    own, so a remembered row equals a fresh one; the strategies route the same turns twice."""

    def __init__(self, inner: Embedder) -> None:
        self.inner = inner
        self.dim = inner.dim
        self._rows: dict[str, NDArray[np.float32]] = {}

    def embed(self, texts: Sequence[str]) -> NDArray[np.float32]:
        missing = list(dict.fromkeys(t for t in texts if t not in self._rows))
        if missing:
            for text, row in zip(missing, self.inner.embed(missing), strict=True):
                self._rows[text] = row
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            out[i] = self._rows[text]
        return out


def replay_service(bundle: ModelBundle, settings: Settings) -> RoutingService:
    """`bundle` (its embedder memoised) behind a RoutingService with agent routing on in-memory
    session and run stores, as the app builds it: a replay never touches a shared Redis."""
    bundle = dataclasses.replace(bundle, embedder=MemoEmbedder(bundle.embedder))
    return RoutingService(bundle, settings, AgentRouting(settings, memory_stores(settings)))


def load_service(model_dir: Path, settings: Settings) -> RoutingService:
    """replay_service on the bundle in `model_dir`, validated as the service validates it."""
    return replay_service(load_bundle(model_dir, settings.onnx_threads), settings)


def route_request(
    call: ReplayCall,
    session_id: str | None = None,
    previous: tuple[str, CallTokens] | None = None,
) -> RouteRequest:
    """The /route body for a call: its messages, system and tools, plus agent context when
    `session_id` is given (previous: the model and usage of the session's previous call)."""
    fields: dict[str, object] = {"messages": list(call.messages)}
    if call.system:
        fields["system"] = call.system
    if call.tools:
        fields["tools"] = list(call.tools)
    if session_id is not None:
        fields["session_id"] = session_id
    if previous is not None:
        fields["previous_model"] = previous[0]
        fields["previous_usage"] = Usage.model_validate(previous[1].usage())
    return RouteRequest.model_validate(fields)


def route_per_turn(service: RoutingService, session: ReplaySession) -> list[RouteDecision]:
    """Every call routed on its own: no agent context, the plain cheapest-adequate policy."""
    return service.route_many([route_request(c) for c in session.calls])


@dataclass(frozen=True)
class CacheAwareRun:
    decisions: list[RouteDecision]
    trace: CacheTrace
    loop_turn: NDArray[np.bool_]  # the call answers a pending tool_use: the router pins it
    thinking: NDArray[np.bool_]  # ... with thinking blocks in the current assistant turn
    prefix: NDArray[np.int64]  # the cached prefix the router priced (cost_breakdown)


def route_cache_aware(
    service: RoutingService,
    session: ReplaySession,
    shape: SessionShape,
    min_tokens: Callable[[str], int],
    on_call: Callable[[], None] | None = None,
) -> CacheAwareRun:
    """Each call routed with the session's agent context, then served (in the cache simulation)
    by the model chosen; that call's simulated usage is the next call's previous_usage."""
    session_id = f"replay-{uuid.uuid4().hex[:8]}-{session.session_id}"[:256]
    sim = CacheSim(shape, min_tokens)
    decisions, steps, loop_turn, thinking = [], [], [], []
    previous: tuple[str, CallTokens] | None = None
    for k, call in enumerate(session.calls):
        request = route_request(call, session_id, previous)
        decision = service.route(request)
        step = sim.step(decision.model)
        decisions.append(decision)
        steps.append(step)
        loop_turn.append(pin_reason(request) is not None)
        thinking.append(loop_turn[-1] and turn_has_thinking(request))
        previous = (decision.model, call_tokens(step, int(shape.output[k]), shape.one_hour))
        if on_call is not None:
            on_call()
    return CacheAwareRun(
        decisions,
        trace_of(shape, tuple(d.model for d in decisions), steps),
        np.asarray(loop_turn, dtype=bool).reshape(len(steps)),
        np.asarray(thinking, dtype=bool).reshape(len(steps)),
        np.asarray(
            [(d.cost_breakdown or {}).get("prefix_tokens", 0) for d in decisions], dtype=np.int64
        ).reshape(len(steps)),
    )

"""Replayed calls go through the service's own routing: the same decision as POST /route for the
same body, thinking blocks pin the tier within a tool loop, and the per-turn strategy carries
no agent context. Uses the fake bundle (FakeEmbedder + a real ONNX classifier)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from fastapi.testclient import TestClient

from eval.replay.costs import Pricer
from eval.replay.routing import MemoEmbedder, route_request
from eval.replay.session import CallTokens, ReplaySession
from eval.replay.strategies import replay_session
from router.agent.pinning import has_agent_context, turn_has_thinking
from router.core.service import RoutingService
from router.core.tiers import Tier
from router.http.app import create_app
from tests.fakes import FakeEmbedder

MAIN_4D56 = "4d5611e5-241a-462a-8d15-5122611a9569.jsonl"


def thinking_loop_call(session: ReplaySession) -> int:
    """The first call that answers a tool_use of an assistant turn with thinking blocks."""
    return next(
        k for k, c in enumerate(session.calls) if turn_has_thinking(route_request(c)) and k > 0
    )


def test_thinking_blocks_pin_the_tier_within_a_tool_loop(
    claude_sessions: dict[str, ReplaySession], make_service: Callable[..., RoutingService]
) -> None:
    service = make_service(deadline_ms=5000)
    session = claude_sessions[MAIN_4D56]
    k = thinking_loop_call(session)
    before = session.calls[k - 1].tokens
    alone = service.route(route_request(session.calls[k]))
    for tier in Tier:
        model = service.settings.tier_spec(tier).model
        decision = service.route(route_request(session.calls[k], "pin-test", (model, before)))
        assert decision.tier == tier, decision.reason
        assert decision.cost_breakdown is not None and decision.cost_breakdown["pinned"] is True
        assert decision.reason.startswith(f"pinned to {tier.value}: mid tool-use loop")
        assert "thinking blocks that must go back to the model that wrote them" in decision.reason
    assert alone.cost_breakdown is None  # no agent context: the plain policy, no pin


def test_replayed_thinking_loops_never_change_tier(
    claude_sessions: dict[str, ReplaySession], make_service: Callable[..., RoutingService]
) -> None:
    service = make_service(deadline_ms=5000)
    replay = replay_session(claude_sessions[MAIN_4D56], service, Pricer(service.settings))
    tiers = replay.runs["tierwise"].tiers
    assert replay.thinking.sum() > 100
    for k in np.flatnonzero(replay.thinking):
        assert tiers[k] == tiers[k - 1]
    assert not replay.loop_turn[0]


def test_a_replayed_decision_is_the_one_post_route_gives(
    claude_sessions: dict[str, ReplaySession], make_service: Callable[..., RoutingService]
) -> None:
    service = make_service(deadline_ms=5000)
    client = TestClient(create_app(service.settings, service))
    call = claude_sessions["tool_heavy.jsonl"].calls[2]
    previous = ("claude-opus-4-6", CallTokens(3, 200, 17_000, 9_000))
    request = route_request(call, "http-vs-replay", previous)
    assert has_agent_context(request) and not has_agent_context(route_request(call))
    body = request.model_dump(mode="json", exclude_none=True)
    over_http = client.post("/route", json=body)
    assert over_http.status_code == 200, over_http.text
    in_process = service.route(route_request(call, "http-vs-replay-2", previous))
    got = over_http.json()
    assert got["tier"] == in_process.tier.value
    assert got["cost_breakdown"]["tiers"] == in_process.cost_breakdown["tiers"]  # type: ignore[index]
    assert got["cost_breakdown"]["prefix_tokens"] == 17_000 + 9_000 + 3


def test_memo_embedder_returns_the_rows_of_the_embedder_it_wraps() -> None:
    inner = FakeEmbedder()
    memo = MemoEmbedder(inner)
    texts = ["fix the failing test", "hello", "fix the failing test"]
    assert np.array_equal(memo.embed(texts), inner.embed(texts))
    assert np.array_equal(memo.embed(texts[::-1]), inner.embed(texts[::-1]))
    assert memo.dim == inner.dim

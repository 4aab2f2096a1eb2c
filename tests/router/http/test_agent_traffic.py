"""Agent-sized requests over real HTTP (uvicorn): a body is parsed once, a long history routes as
the fully validated request does, bad history is a 4xx naming the field, a body in the wrong
media type is told what to send, and the gateway forwards the caller's own bytes."""

from __future__ import annotations

import gc
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from starlette.requests import Request

from router.core.messages import MAX_MESSAGES, Message
from router.core.schemas import RouteRequest
from router.core.service import RoutingService
from router.http.app import GC_YOUNG_THRESHOLD, create_app
from tests.agent_sessions import claude_code_calls, tau_bench_calls
from tests.fake_anthropic import FakeAnthropic
from tests.live_server import serve_app

JSON = {"content-type": "application/json"}
GATEWAY = {"x-api-key": "sk-test", "anthropic-version": "2023-06-01"}


@pytest.fixture
def server(
    make_service: Callable[..., RoutingService], fake_anthropic: FakeAnthropic
) -> Iterator[tuple[str, RoutingService]]:
    service = make_service(deadline_ms=5000, upstream_url=fake_anthropic.base_url)
    with serve_app(create_app(service.settings, service=service)) as url:
        yield url, service


def history(n: int, last: str = "what now?") -> list[dict[str, Any]]:
    """n messages of a tool loop, the last a user question."""
    out: list[dict[str, Any]] = []
    for i in range(n - 1):
        if i % 2:
            call = {"type": "tool_use", "id": f"t{i}", "name": "bash", "input": {"cmd": f"ls {i}"}}
            out.append({"role": "assistant", "content": [call]})
        else:
            result = {"type": "tool_result", "tool_use_id": f"t{i - 1}", "content": f"file_{i}.py"}
            out.append({"role": "user", "content": [result]})
    return [*out, {"role": "user", "content": last}]


def fully_routed(service: RoutingService, body: dict[str, Any]) -> dict[str, Any]:
    """The decision for `body` with every message built by pydantic (no lazy history)."""
    built = [Message.model_validate(m) for m in body["messages"]]
    decision = service.route(RouteRequest.model_validate({**body, "messages": built}))
    return decision.model_dump(mode="json", exclude={"latency_ms"})


def test_the_body_is_parsed_once(
    server: tuple[str, RoutingService], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, _ = server

    async def parsed_again(self: Request) -> Any:
        raise AssertionError("FastAPI parsed a body StrictJsonBody had already parsed")

    monkeypatch.setattr(Request, "json", parsed_again)  # ParsedJsonRequest must not fall back
    r = httpx.post(f"{url}/route", json={"messages": history(MAX_MESSAGES)})
    assert r.status_code == 200, r.text


def test_agent_transcripts_route_over_http_as_fully_validated(
    server: tuple[str, RoutingService], shared_data: Path
) -> None:
    url, service = server
    sessions = shared_data / "agent_sessions"
    calls = [
        *list(claude_code_calls(sessions / "claude_code" / "transcripts.tar.gz"))[::60],
        *list(tau_bench_calls(sessions / "tau_bench"))[::200],
    ]
    with httpx.Client(base_url=url, timeout=30) as client:
        for name, body in calls:
            r = client.post("/route", json=body)
            assert r.status_code == 200, (name, r.text[:300])
            got = {k: v for k, v in r.json().items() if k != "latency_ms"}
            assert got == fully_routed(service, body), name


def test_the_longest_history_routes_as_fully_validated(server: tuple[str, RoutingService]) -> None:
    url, service = server
    body = {"system": "You are a coding agent.", "messages": history(MAX_MESSAGES, "prove it")}
    r = httpx.post(f"{url}/route", json=body, timeout=30)
    assert r.status_code == 200, r.text
    assert {k: v for k, v in r.json().items() if k != "latency_ms"} == fully_routed(service, body)


def bad_history(where: int, message: Any) -> dict[str, Any]:
    messages = history(MAX_MESSAGES)
    messages[where] = message
    return {"messages": messages}


@pytest.mark.parametrize(
    ("body", "named"),
    [
        (bad_history(1500, {"role": "system", "content": "x"}), "messages.1500.role"),
        (bad_history(3, {"role": "user", "content": None}), "messages.3.content"),
        (bad_history(7, {"role": "user", "content": [{"type": "text"}]}), "messages.7.content.0"),
        (
            bad_history(11, {"role": "user", "content": [{"type": ""}]}),
            "messages.11.content.0.type",
        ),
        (bad_history(2, "hello"), "messages.2"),
        ({"messages": [*history(MAX_MESSAGES), {"role": "user", "content": "x"}]}, "messages:"),
    ],
    ids=["role", "null content", "text without text", "empty type", "not an object", "too many"],
)
def test_bad_history_is_a_422_naming_the_field(
    server: tuple[str, RoutingService], body: dict[str, Any], named: str
) -> None:
    url, _ = server
    r = httpx.post(f"{url}/route", json=body, timeout=30)
    assert r.status_code == 422, r.text
    assert named in r.json()["error"]["message"], r.json()


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded"])
def test_json_in_another_media_type_is_told_what_to_send(
    server: tuple[str, RoutingService], content_type: str
) -> None:
    url, _ = server
    body = json.dumps({"prompt": "hi"}).encode()
    r = httpx.post(f"{url}/route", content=body, headers={"content-type": content_type})
    assert r.status_code == 415, r.text
    message = r.json()["error"]["message"]
    assert "content-type: application/json" in message and content_type in message
    ok = httpx.post(f"{url}/route", content=body, headers={"content-type": "application/json"})
    assert ok.status_code == 200


def test_the_gateway_forwards_the_callers_bytes_with_only_the_model_changed(
    server: tuple[str, RoutingService], fake_anthropic: FakeAnthropic
) -> None:
    url, _ = server
    # Formatting no serializer would reproduce: spacing, key order, escapes, number spellings.
    sent = (
        b'{\n  "max_tokens" : 64,  "temperature": 1.50, "metadata": {"model": "nested stays"},\n'
        b'  "messages": [{"role": "user", "content": "caf\\u00e9 \\"model\\": \\u2603 [x"}],\n'
        b'  "model":   "claude-opus-4-6" , "stop_sequences": ["\\n\\n"]}'
    )
    r = httpx.post(f"{url}/v1/messages", content=sent, headers=GATEWAY | JSON)
    assert r.status_code == 200, r.text
    (seen,) = fake_anthropic.calls("/v1/messages")
    chosen = r.headers["x-tierwise-model"]
    assert seen.raw == sent.replace(b'"claude-opus-4-6"', json.dumps(chosen).encode())


def test_the_gateway_adds_a_missing_model_without_touching_the_rest(
    server: tuple[str, RoutingService], fake_anthropic: FakeAnthropic
) -> None:
    url, _ = server
    sent = b'{"max_tokens":64,"messages":[{"role":"user","content":"hi"}]}'
    r = httpx.post(f"{url}/v1/messages", content=sent, headers=GATEWAY | JSON)
    assert r.status_code == 200, r.text
    (seen,) = fake_anthropic.calls("/v1/messages")
    model = json.dumps(r.headers["x-tierwise-model"]).encode()
    assert seen.raw == b'{"model":' + model + b"," + sent[1:]


def test_the_gateway_forwards_a_long_agent_body_unchanged_but_the_model(
    server: tuple[str, RoutingService], fake_anthropic: FakeAnthropic
) -> None:
    url, _ = server
    body = {"model": "claude-opus-4-6", "max_tokens": 64, "messages": history(MAX_MESSAGES)}
    sent = json.dumps(body, indent=1).encode()  # past the small-body path: found by the numpy scan
    r = httpx.post(f"{url}/v1/messages", content=sent, headers=GATEWAY | JSON, timeout=30)
    assert r.status_code == 200, r.text
    (seen,) = fake_anthropic.calls("/v1/messages")
    model = json.dumps(r.headers["x-tierwise-model"]).encode()
    assert seen.raw == sent.replace(b'"model": "claude-opus-4-6"', b'"model": ' + model)


def test_after_start_up_the_heap_is_frozen_and_young_collections_are_rare(
    make_service: Callable[..., RoutingService],
) -> None:
    service = make_service()
    with TestClient(create_app(service.settings, service=service)) as client:
        assert client.get("/healthz").status_code == 200
        # Once per process: whichever app started first froze the heap it found.
        assert gc.get_freeze_count() > 10_000
        assert gc.get_threshold()[0] == GC_YOUNG_THRESHOLD

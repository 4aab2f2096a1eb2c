"""POST /v1/messages end to end over real HTTP: the anthropic SDK -> tierwise (uvicorn) ->
the fake Anthropic server (tests/fake_anthropic.py)."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import anthropic
import httpx
import pytest
from click.testing import CliRunner
from fastapi import FastAPI

from labeling.sources import read_jsonl_turns
from router.core.schemas import RouteRequest
from router.core.service import RoutingService
from router.errors import BadRequestError
from router.http.app import create_app
from router.http.calllog.stores import SqliteStore
from router.http.gateway import _route_request
from router.http.upstream_reply import UsageTracker
from tests.fake_anthropic import FakeAnthropic, Reply
from tests.live_server import serve_app
from tierwise.cli import main as tierwise_cli

API_KEY = "sk-ant-test-SECRET-0123456789"
HEADERS = {"x-api-key": API_KEY, "anthropic-version": "2023-06-01"}
EASY = "hello thanks name color"
HARD = "prove derive theorem integral optimize architecture prove"
TIER_MODELS = {"claude-haiku-4-5", "claude-sonnet-4-6", "claude-opus-4-6"}


@dataclass
class Tierwise:
    url: str
    app: FastAPI
    db: Path

    def rows(self, n: int, timeout_s: float = 5.0) -> list[dict[str, Any]]:
        """Wait until the call log holds `n` rows (it is written by a background thread)."""
        deadline = time.monotonic() + timeout_s
        while True:
            store = SqliteStore(self.db)
            rows = list(store.rows())
            store.close()
            if len(rows) >= n or time.monotonic() > deadline:
                return rows
            time.sleep(0.02)


def body(prompt: str = EASY, **extra: Any) -> dict[str, Any]:
    return {
        "model": "claude-opus-4-6",
        "max_tokens": 64,
        "messages": [{"role": "user", "content": prompt}],
        **extra,
    }


@pytest.fixture
def start_tierwise(
    make_service: Callable[..., RoutingService], tmp_path: Path
) -> Iterator[Callable[..., Tierwise]]:
    with_servers: list[Any] = []

    def start(upstream_url: str, **settings: Any) -> Tierwise:
        db = tmp_path / "calls.db"
        # A generous deadline: a loaded 2-core CI box must not turn decisions into fallbacks.
        opts = {"upstream_url": upstream_url, "calllog_url": str(db), "deadline_ms": 5000}
        service = make_service(**(opts | settings))
        app = create_app(service.settings, service=service)
        ctx = serve_app(app)
        url = ctx.__enter__()
        with_servers.append(ctx)
        return Tierwise(url, app, db)

    yield start
    for ctx in reversed(with_servers):
        ctx.__exit__(None, None, None)


@pytest.fixture
def tierwise(start_tierwise: Callable[..., Tierwise], fake_anthropic: FakeAnthropic) -> Tierwise:
    return start_tierwise(fake_anthropic.base_url)


def test_routes_rewrites_model_and_passes_everything_else(
    tierwise: Tierwise, fake_anthropic: FakeAnthropic
) -> None:
    sent = body(temperature=0.2, system="be brief", metadata={"user_id": "u1"})
    headers = HEADERS | {"anthropic-beta": "beta-x", "x-tierwise-session-id": "s1"}
    r = httpx.post(f"{tierwise.url}/v1/messages", json=sent, headers=headers)
    assert r.status_code == 200, r.text
    (seen,) = fake_anthropic.calls("/v1/messages")
    assert seen.body["model"] == r.headers["x-tierwise-model"] in TIER_MODELS
    assert {k: v for k, v in seen.body.items() if k != "model"} == {
        k: v for k, v in sent.items() if k != "model"
    }
    assert seen.headers["x-api-key"] == API_KEY
    assert seen.headers["anthropic-version"] == "2023-06-01"
    assert seen.headers["anthropic-beta"] == "beta-x"
    assert not any(h.startswith("x-tierwise") for h in seen.headers)
    assert r.headers["x-tierwise-tier"] in ("haiku", "sonnet", "opus")
    assert r.headers["x-tierwise-model-version"] == "fake-v1"
    assert r.headers["x-tierwise-fallback"] == "false"
    assert r.headers["x-tierwise-reason"]
    assert r.headers["request-id"].startswith("req_")
    assert r.json()["content"][0]["text"] == f"fake answer from {seen.body['model']}"

    (row,) = tierwise.rows(1)
    assert row["endpoint"] == "gateway" and row["routed"] and row["upstream_status"] == 200
    assert row["model"] == seen.body["model"]
    assert row["session_id"] == "s1"
    assert row["input_tokens"] == r.json()["usage"]["input_tokens"] > 0
    assert row["cost_usd"] > 0
    assert row["request"]["messages"] == sent["messages"]


def test_hard_turn_gets_a_higher_tier(tierwise: Tierwise) -> None:
    order = ["haiku", "sonnet", "opus"]
    easy = httpx.post(f"{tierwise.url}/v1/messages", json=body(EASY), headers=HEADERS)
    hard = httpx.post(f"{tierwise.url}/v1/messages", json=body(HARD), headers=HEADERS)
    assert order.index(hard.headers["x-tierwise-tier"]) > order.index(
        easy.headers["x-tierwise-tier"]
    )


def test_opt_out_header_keeps_the_callers_model(
    tierwise: Tierwise, fake_anthropic: FakeAnthropic
) -> None:
    r = httpx.post(
        f"{tierwise.url}/v1/messages",
        json=body(EASY, model="claude-opus-4-6"),
        headers=HEADERS | {"x-tierwise-route": "off"},
    )
    assert r.status_code == 200
    assert fake_anthropic.calls("/v1/messages")[0].body["model"] == "claude-opus-4-6"
    assert r.headers["x-tierwise-tier"] == "opus"
    assert "off" in r.headers["x-tierwise-reason"]
    assert "x-tierwise-model-version" not in r.headers
    (row,) = tierwise.rows(1)
    assert row["routed"] is False and row["tier"] is None and row["model"] == "claude-opus-4-6"
    assert row["request"]["messages"][0]["content"] == EASY  # still there for labeling


def test_tier_bound_headers(tierwise: Tierwise, fake_anthropic: FakeAnthropic) -> None:
    r = httpx.post(
        f"{tierwise.url}/v1/messages",
        json=body(EASY),
        headers=HEADERS | {"x-tierwise-min-tier": "opus"},
    )
    assert r.headers["x-tierwise-tier"] == "opus"
    r = httpx.post(
        f"{tierwise.url}/v1/messages",
        json=body(HARD),
        headers=HEADERS | {"x-tierwise-max-tier": "haiku"},
    )
    assert r.headers["x-tierwise-tier"] == "haiku"
    assert fake_anthropic.calls("/v1/messages")[-1].body["model"] == "claude-haiku-4-5"

    bad = httpx.post(
        f"{tierwise.url}/v1/messages",
        json=body(),
        headers=HEADERS | {"x-tierwise-min-tier": "gpt5"},
    )
    assert bad.status_code == 400
    assert bad.json()["type"] == "error"
    assert "x-tierwise-min-tier" in bad.json()["error"]["message"]
    assert len(fake_anthropic.calls("/v1/messages")) == 2  # the bad one never went upstream


def test_body_routing_cannot_read_is_forwarded_unchanged(
    tierwise: Tierwise, fake_anthropic: FakeAnthropic
) -> None:
    prefill = body()
    prefill["messages"].append({"role": "assistant", "content": "Sure,"})
    r = httpx.post(f"{tierwise.url}/v1/messages", json=prefill, headers=HEADERS)
    assert r.status_code == 200
    assert fake_anthropic.calls("/v1/messages")[0].body == prefill
    assert r.headers["x-tierwise-reason"].startswith("not routed: ")


def test_upstream_errors_pass_through_with_status_and_headers(
    tierwise: Tierwise, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.fail_next(429, retry_after=7, message="slow down")
    r = httpx.post(f"{tierwise.url}/v1/messages", json=body(), headers=HEADERS)
    assert r.status_code == 429
    assert r.headers["retry-after"] == "7"
    assert r.json()["error"] == {"type": "rate_limit_error", "message": "slow down"}
    assert r.headers["x-tierwise-tier"]
    r = httpx.post(f"{tierwise.url}/v1/messages", json=body(), headers={})  # no api key
    assert r.status_code == 401
    rows = tierwise.rows(2)
    assert sorted(row["upstream_status"] for row in rows) == [401, 429]
    assert all(row["input_tokens"] is None for row in rows)


def test_unreachable_upstream_is_502_in_anthropic_shape(
    start_tierwise: Callable[..., Tierwise],
) -> None:
    tw = start_tierwise("http://127.0.0.1:9", upstream_connect_timeout_s=2)
    r = httpx.post(f"{tw.url}/v1/messages", json=body(), headers=HEADERS)
    assert r.status_code == 502
    assert r.json()["type"] == "error"
    assert r.json()["error"]["type"] == "api_error"
    assert "could not reach the upstream" in r.json()["error"]["message"]
    assert r.headers["x-tierwise-tier"]
    (row,) = tw.rows(1)
    assert row["upstream_status"] is None and "ConnectError" in row["upstream_error"]
    metrics = httpx.get(f"{tw.url}/metrics").text
    assert 'tierwise_gateway_upstream_responses_total{status="unreachable"} 1.0' in metrics


def test_stream_is_relayed_and_usage_recorded(
    tierwise: Tierwise, fake_anthropic: FakeAnthropic
) -> None:
    with httpx.stream(
        "POST", f"{tierwise.url}/v1/messages", json=body(stream=True), headers=HEADERS
    ) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        assert r.headers["x-tierwise-tier"]
        events = [
            line.removeprefix("event: ") for line in r.iter_lines() if line.startswith("event:")
        ]
    assert events[0] == "message_start" and events[-2:] == ["message_delta", "message_stop"]
    (row,) = tierwise.rows(1)
    assert row["stream"] is True
    assert row["input_tokens"] > 0 and row["output_tokens"] > 0
    assert row["cost_usd"] > 0


class _HeldSSE(BaseHTTPRequestHandler):
    """Sends message_start, then holds the stream until `release` is set; then either ends it
    properly (message_delta) or, with `die`, drops the connection mid-body."""

    protocol_version = "HTTP/1.1"
    release = threading.Event()
    die = False
    held_too_long = False

    def log_message(self, *args: Any) -> None:
        pass

    def do_POST(self) -> None:  # noqa: N802
        self.rfile.read(int(self.headers["content-length"]))
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()
        start = {"type": "message_start", "message": {"id": "msg_1", "usage": {"input_tokens": 5}}}
        self._chunk(f"event: message_start\ndata: {json.dumps(start)}\n\n".encode())
        type(self).held_too_long = not self.release.wait(10)
        if self.die:
            self.close_connection = True
            return
        delta = {"type": "message_delta", "usage": {"output_tokens": 3}}
        try:
            self._chunk(f"event: message_delta\ndata: {json.dumps(delta)}\n\n".encode())
            self.wfile.write(b"0\r\n\r\n")
        except OSError:  # tierwise already hung up (the caller left)
            pass

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()


@pytest.fixture
def held_sse() -> Iterator[type[_HeldSSE]]:
    handler = type("Held", (_HeldSSE,), {"release": threading.Event(), "die": False})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    handler.base_url = f"http://127.0.0.1:{server.server_address[1]}"  # type: ignore[attr-defined]
    try:
        yield handler
    finally:
        handler.release.set()
        server.shutdown()
        server.server_close()


def test_stream_is_not_buffered(
    start_tierwise: Callable[..., Tierwise], held_sse: type[_HeldSSE]
) -> None:
    tw = start_tierwise(held_sse.base_url)  # type: ignore[attr-defined]
    timeout = httpx.Timeout(5.0)  # a buffering gateway would hold the first event 10 s
    with httpx.stream(
        "POST", f"{tw.url}/v1/messages", json=body(stream=True), timeout=timeout
    ) as r:
        lines = r.iter_lines()
        assert next(lines) == "event: message_start"  # arrived while upstream still holds
        held_sse.release.set()
        rest = list(lines)
    assert "event: message_delta" in rest
    assert not held_sse.held_too_long
    (row,) = tw.rows(1)
    assert (row["input_tokens"], row["output_tokens"]) == (5, 3)
    assert row["message_id"] == "msg_1" and row["upstream_error"] is None


def test_upstream_dying_mid_stream_becomes_an_sse_error(
    start_tierwise: Callable[..., Tierwise], held_sse: type[_HeldSSE]
) -> None:
    held_sse.die = True
    held_sse.release.set()
    tw = start_tierwise(held_sse.base_url)  # type: ignore[attr-defined]
    with httpx.stream("POST", f"{tw.url}/v1/messages", json=body(stream=True)) as r:
        lines = [line for line in r.iter_lines() if line]
    assert lines[0] == "event: message_start" and lines[-2] == "event: error"
    error = json.loads(lines[-1].removeprefix("data: "))
    assert error["type"] == "error" and "stream interrupted" in error["error"]["message"]
    (row,) = tw.rows(1)
    assert "stream interrupted" in row["upstream_error"] and row["input_tokens"] == 5


def test_caller_leaving_mid_stream_closes_the_upstream_and_is_logged(
    start_tierwise: Callable[..., Tierwise], held_sse: type[_HeldSSE]
) -> None:
    tw = start_tierwise(held_sse.base_url)  # type: ignore[attr-defined]
    with httpx.stream("POST", f"{tw.url}/v1/messages", json=body(stream=True)) as r:
        assert next(r.iter_lines()) == "event: message_start"
    # The upstream is still holding: the row can only come from tierwise noticing the caller left.
    (row,) = tw.rows(1)
    assert row["upstream_error"] == "the caller disconnected mid-stream"
    assert row["input_tokens"] == 5 and not held_sse.release.is_set()


def test_official_sdk_create_and_stream(
    tierwise: Tierwise, fake_anthropic: FakeAnthropic, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    client = anthropic.Anthropic(base_url=tierwise.url, api_key=API_KEY, max_retries=0)
    message = client.messages.create(
        model="claude-opus-4-6", max_tokens=64, messages=[{"role": "user", "content": EASY}]
    )
    routed = fake_anthropic.calls("/v1/messages")[0].body["model"]
    assert message.model == routed
    assert message.content[0].text == f"fake answer from {routed}"  # type: ignore[union-attr]
    assert message.usage.input_tokens > 0

    fake_anthropic.script(routed, Reply(text="streamed words arrive one by one"))
    with client.messages.stream(
        model="claude-opus-4-6", max_tokens=64, messages=[{"role": "user", "content": EASY}]
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "streamed words arrive one by one"
    assert final.usage.output_tokens > 0

    raw = client.messages.with_raw_response.create(
        model="claude-opus-4-6", max_tokens=64, messages=[{"role": "user", "content": HARD}]
    )
    assert raw.headers["x-tierwise-tier"] in ("sonnet", "opus")

    counted = client.messages.count_tokens(
        model="claude-opus-4-6", messages=[{"role": "user", "content": EASY}]
    )
    assert counted.input_tokens > 0
    assert fake_anthropic.calls("/v1/messages/count_tokens")[0].body["model"] == "claude-opus-4-6"

    fake_anthropic.fail_next(400, message="max_tokens: too large")
    with pytest.raises(anthropic.BadRequestError, match="too large"):
        client.messages.create(
            model="claude-opus-4-6", max_tokens=64, messages=[{"role": "user", "content": EASY}]
        )

    rows = tierwise.rows(4)
    assert [r["stream"] for r in rows[:2]] == [False, True]
    assert all(r["output_tokens"] for r in rows[:3])
    assert [r["answer"] for r in rows[:2]] == [
        f"fake answer from {routed}",
        "streamed words arrive one by one",
    ]
    # The API key is forwarded, never logged or stored.
    # (this SDK version sends the key as `authorization: Bearer ...`)
    forwarded = fake_anthropic.calls("/v1/messages")[0].headers
    assert API_KEY in (forwarded.get("x-api-key") or forwarded.get("authorization") or "")
    assert API_KEY not in caplog.text
    assert all(API_KEY.encode() not in p.read_bytes() for p in tierwise.db.parent.glob("calls*"))


def test_redaction_stores_only_the_hash(
    start_tierwise: Callable[..., Tierwise], fake_anthropic: FakeAnthropic
) -> None:
    tw = start_tierwise(fake_anthropic.base_url, redact_prompts=True)
    secret = "my private diary entry"
    httpx.post(f"{tw.url}/v1/messages", json=body(secret), headers=HEADERS)
    httpx.post(f"{tw.url}/route", json={"prompt": secret})
    rows = tw.rows(2)
    assert [r["redacted"] for r in rows] == [True, True]
    assert all(r["request"] is None and len(r["request_hash"]) == 64 for r in rows)
    assert rows[0]["answer"] is None and rows[0]["output_tokens"] > 0
    assert all(secret.encode() not in p.read_bytes() for p in tw.db.parent.glob("calls*"))


def test_usage_tracker_handles_events_split_across_chunks() -> None:
    events = (
        b'event: message_start\ndata: {"type":"message_start","message":{"usage":'
        b'{"input_tokens":11,"cache_read_input_tokens":4,"output_tokens":1}}}\n\n'
        b'event: content_block_delta\ndata: {"type":"content_block_delta"}\n\n'
        b'event: message_delta\ndata: {"type":"message_delta","usage":{"output_tokens":9}}\n\n'
    )
    tracker = UsageTracker()
    for i in range(0, len(events), 7):
        tracker.feed(events[i : i + 7])
    usage = tracker.result()
    assert usage is not None
    assert (usage.input_tokens, usage.output_tokens, usage.cache_read_input_tokens) == (11, 9, 4)


def test_gateway_with_auth_takes_the_tierwise_token_and_keeps_it(
    start_tierwise: Callable[..., Tierwise], fake_anthropic: FakeAnthropic
) -> None:
    tw = start_tierwise(fake_anthropic.base_url, auth_tokens="tw-token-1")
    messages = [{"role": "user", "content": EASY}]
    with anthropic.Anthropic(base_url=tw.url, api_key=API_KEY, max_retries=0) as anonymous:
        with pytest.raises(anthropic.AuthenticationError, match="x-tierwise-token"):
            anonymous.messages.create(model="claude-opus-4-6", max_tokens=8, messages=messages)
    with anthropic.Anthropic(
        base_url=tw.url,
        api_key=API_KEY,
        max_retries=0,
        default_headers={"x-tierwise-token": "tw-token-1"},
    ) as client:
        client.messages.create(model="claude-opus-4-6", max_tokens=8, messages=messages)
    (seen,) = fake_anthropic.calls("/v1/messages")
    assert "x-tierwise-token" not in seen.headers
    assert API_KEY in seen.headers.get("authorization", "") + seen.headers.get("x-api-key", "")


def test_other_endpoints_pass_through(tierwise: Tierwise, fake_anthropic: FakeAnthropic) -> None:
    with anthropic.Anthropic(base_url=tierwise.url, api_key=API_KEY, max_retries=0) as client:
        batch = client.messages.batches.create(
            requests=[
                {
                    "custom_id": "a1",
                    "params": {
                        "model": "claude-opus-4-6",
                        "max_tokens": 8,
                        "messages": [{"role": "user", "content": EASY}],
                    },
                }
            ]
        )
        assert client.messages.batches.retrieve(batch.id).processing_status == "ended"
        listed = client.messages.batches.list()
        assert [b.id for b in listed.data] == [batch.id]
        with pytest.raises(anthropic.NotFoundError):
            client.models.list()
    paths = [(r.method, r.path) for r in fake_anthropic.requests]
    assert ("POST", "/v1/messages/batches") in paths and ("GET", "/v1/models") in paths
    # Batches are not routed: the model stays the caller's.
    sent = fake_anthropic.calls("/v1/messages/batches")[0].body
    assert sent["requests"][0]["params"]["model"] == "claude-opus-4-6"
    assert tierwise.rows(0, timeout_s=0.2) == []


def test_big_image_bodies_are_forwarded_whole_and_logged_without_the_data(
    tierwise: Tierwise, fake_anthropic: FakeAnthropic
) -> None:
    data = "A" * 2_000_000  # over ROUTER_MAX_BODY_BYTES (1 MB), under the gateway's 32 MB
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": data}}
    content = [image, {"type": "text", "text": "what is in this picture?"}]
    r = httpx.post(
        f"{tierwise.url}/v1/messages",
        json=body(messages=[{"role": "user", "content": content}]),
        headers=HEADERS,
    )
    assert r.status_code == 200, r.text
    assert r.headers["x-tierwise-model-version"] == "fake-v1"
    sent = fake_anthropic.calls("/v1/messages")[0].body
    assert sent["messages"][0]["content"][0]["source"]["data"] == data
    (row,) = tierwise.rows(1)
    logged = row["request"]["messages"][0]["content"][0]["source"]["data"]
    assert logged == "<2000000 base64 chars not logged>"


def test_gateway_body_limit_answers_413_in_anthropic_shape(
    start_tierwise: Callable[..., Tierwise], fake_anthropic: FakeAnthropic
) -> None:
    tw = start_tierwise(fake_anthropic.base_url, gateway_max_body_bytes=2000)
    with anthropic.Anthropic(base_url=tw.url, api_key=API_KEY, max_retries=0) as client:
        with pytest.raises(anthropic.APIStatusError) as info:
            client.messages.create(
                model="claude-opus-4-6",
                max_tokens=8,
                messages=[{"role": "user", "content": "x" * 5000}],
            )
    assert info.value.status_code == 413
    assert info.value.body["error"]["type"] == "request_too_large"  # type: ignore[index]
    assert "ROUTER_GATEWAY_MAX_BODY_BYTES" in info.value.body["error"]["message"]  # type: ignore[index]
    assert fake_anthropic.calls("/v1/messages") == []


@pytest.mark.parametrize("stream", [False, True])
def test_only_finished_text_replies_are_kept_as_answers_and_exported(
    tierwise: Tierwise, fake_anthropic: FakeAnthropic, tmp_path: Path, stream: bool
) -> None:
    tool_use = {"type": "tool_use", "id": "tu_1", "name": "search", "input": {"q": "x"}}
    replies = [
        Reply(text="Paris is the capital."),
        Reply(content=[{"type": "text", "text": "let me look"}, tool_use], stop_reason="tool_use"),
        Reply(text="cut off mid", stop_reason="max_tokens"),
    ]
    for model in TIER_MODELS:
        fake_anthropic.script(model, *replies)
    prompts = ["capital of france", "search it", "write a long essay"]
    for prompt in prompts:
        r = httpx.post(
            f"{tierwise.url}/v1/messages",
            json=body(prompt, stream=stream),
            headers=HEADERS | {"x-tierwise-min-tier": "opus"},  # same model, in script order
        )
        assert r.status_code == 200
    rows = tierwise.rows(3)
    assert [row["answer"] for row in rows] == ["Paris is the capital.", None, None]

    out = tmp_path / "turns.jsonl"
    result = CliRunner().invoke(
        tierwise_cli, ["export-log", "--db", str(tierwise.db), "--out", str(out)]
    )
    assert "3 turns written (1 with a gateway answer)" in result.output
    turns, failures = read_jsonl_turns(out)
    assert failures == []
    answered = {t.request.messages[0].content: t.answers for t in turns}  # type: ignore[index]
    (answer,) = answered["capital of france"].values()
    assert (answer.text, answer.model) == ("Paris is the capital.", "claude-opus-4-6")
    assert answered["search it"] == {} and answered["write a long essay"] == {}


@pytest.mark.parametrize(
    ("messages", "knobs", "want"),
    [
        ([{"role": "user", "content": "hi"}], {}, "routed"),
        ([{"role": "user", "content": "hi"}], {"min_tier": "opus"}, "routed"),
        ([{"role": "assistant", "content": "hi"}], {}, "not routed"),
        # A body routing cannot read is forwarded unrouted even when a knob header is bad too.
        ([{"role": "assistant", "content": "hi"}], {"min_tier": "gpt5"}, "not routed"),
        ([{"role": "user", "content": "hi"}], {"min_tier": "gpt5"}, "x-tierwise-min-tier"),
        ([{"role": "user", "content": "hi"}], {"budget_usd": "5"}, "header body:"),
    ],
)
def test_route_request_blames_body_or_knob(
    messages: list[dict[str, Any]], knobs: dict[str, str], want: str
) -> None:
    msg_body = {"model": "claude-opus-4-6", "max_tokens": 8, "messages": messages}
    if want == "routed":
        parsed = _route_request(msg_body, knobs)
        assert isinstance(parsed, RouteRequest)
        assert parsed.min_tier == knobs.get("min_tier")
    elif want == "not routed":
        parsed = _route_request(msg_body, knobs)
        assert isinstance(parsed, str) and "last message must have role 'user'" in parsed
    else:
        with pytest.raises(BadRequestError, match=want):
            _route_request(msg_body, knobs)

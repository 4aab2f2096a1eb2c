"""The gateway under hostile or broken conditions, over real HTTP (uvicorn, the official
anthropic SDK, the local fake Anthropic): a bad model string is refused before anything goes
upstream, every header tierwise writes is one uvicorn can send, and upstream failures say what
happened."""

from __future__ import annotations

import re
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from router.core.service import RoutingService
from router.http.app import create_app
from router.http.calllog.stores import SqliteStore
from router.http.headers import header_value, safe_headers
from tests.fake_anthropic import FakeAnthropic
from tests.live_server import serve_app

API_KEY = "sk-ant-test-hardening"
# What uvicorn refuses in a response header value (uvicorn/protocols/http/*_impl.py): sending
# one raises "Invalid HTTP header value" and drops the connection without a response.
UVICORN_BAD_VALUE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


@pytest.fixture
def gateway(
    make_service: Callable[..., RoutingService], fake_anthropic: FakeAnthropic, tmp_path: Path
) -> Iterator[tuple[str, Path]]:
    db = tmp_path / "calls.db"
    service = make_service(
        upstream_url=fake_anthropic.base_url, calllog_url=str(db), deadline_ms=5000
    )
    with serve_app(create_app(service.settings, service=service)) as url:
        yield url, db


def logged_rows(db: Path) -> list[dict[str, Any]]:
    store = SqliteStore(db)
    try:
        return list(store.rows())
    finally:
        store.close()


def _prefill(model: str) -> dict[str, Any]:
    return {
        "model": model,
        "max_tokens": 32,
        "messages": [
            {"role": "user", "content": "name a colour"},
            {"role": "assistant", "content": "Sure,"},  # routing cannot read it: forwarded as is
        ],
    }


def _plain(model: str) -> dict[str, Any]:
    return {"model": model, "max_tokens": 32, "messages": [{"role": "user", "content": "hi"}]}


@pytest.mark.parametrize(
    ("model", "params", "stream", "char"),
    [
        ("claude-opus-4-6\u0001", _plain, False, "U+0001"),
        ("x\u0000", _prefill, False, "U+0000"),
        ("m\u007f", _plain, True, "U+007F"),
    ],
)
def test_bad_model_string_is_refused_before_anything_goes_upstream(
    gateway: tuple[str, Path],
    fake_anthropic: FakeAnthropic,
    model: str,
    params: Callable[[str], dict[str, Any]],
    stream: bool,
    char: str,
) -> None:
    url, db = gateway
    # The SDK's default retries: a dropped connection would be sent (and billed) three times.
    client = anthropic.Anthropic(base_url=url, api_key=API_KEY, max_retries=2)
    headers = {"x-tierwise-route": "off"}
    with pytest.raises(anthropic.BadRequestError) as caught:
        if stream:
            with client.messages.stream(**params(model), extra_headers=headers) as events:
                list(events)
        else:
            client.messages.create(**params(model), extra_headers=headers)
    document = caught.value.body
    assert isinstance(document, dict) and document["type"] == "error"
    error = document["error"]
    assert error["type"] == "invalid_request_error"
    assert error["message"] == (
        f"tierwise: model: {model!r} holds the control character {char}; "
        "model ids are printable text"
    )
    assert fake_anthropic.calls("/v1/messages") == []  # nothing went upstream, nothing billed

    # A good call afterwards is served and logged; the refused ones left no 200 in the log.
    ok = client.messages.create(**_plain("claude-opus-4-6"), extra_headers=headers)
    assert ok.content
    rows = logged_rows(db)
    for _ in range(100):
        if rows:
            break
        threading.Event().wait(0.05)
        rows = logged_rows(db)
    assert [(r["model"], r["upstream_status"]) for r in rows] == [("claude-opus-4-6", 200)]


@pytest.mark.parametrize(
    "extra",
    [b"NaN", b"1e999", b"[" * 70 + b"]" * 70, b"[" * 100_000 + b"]" * 100_000],
    ids=["nan", "overflow", "70-deep", "100000-deep"],
)
def test_a_body_sent_as_text_is_parsed_as_strictly_as_json(
    gateway: tuple[str, Path], fake_anthropic: FakeAnthropic, extra: bytes
) -> None:
    """StrictJsonBody leaves a text/plain body alone; the gateway's own parse of it is the same
    strict one, so NaN or deep nesting is not routed (nor a RecursionError, a 500) but forwarded
    as sent for the upstream to judge."""
    url, _ = gateway
    turn = b'"messages": [{"role": "user", "content": "What is 7 + 5?"}]'
    raw = b'{"model": "claude-opus-4-6", "max_tokens": 8, "x": ' + extra + b", " + turn + b"}"
    headers = {"x-api-key": API_KEY, "anthropic-version": "2023-06-01"}
    r = httpx.post(
        f"{url}/v1/messages", content=raw, headers=headers | {"content-type": "text/plain"}
    )
    assert r.headers["x-tierwise-reason"].startswith("not routed: "), r.headers
    (call,) = fake_anthropic.calls("/v1/messages")
    assert call.raw == raw


@given(st.text(max_size=400))
def test_header_values_are_always_sendable(text: str) -> None:
    value = header_value(text)
    assert not UVICORN_BAD_VALUE.search(value)
    assert value == value.strip() and len(value) <= 300
    assert value.isascii()


def test_safe_headers_cleans_every_value() -> None:
    dirty = {"x-tierwise-model": "m\u007f", "x-tierwise-reason": "a\nb\u0000c", "request-id": "r1"}
    assert safe_headers(dirty) == {
        "x-tierwise-model": "m?",
        "x-tierwise-reason": "a b?c",
        "request-id": "r1",
    }


@pytest.fixture
def silent_upstream() -> Iterator[str]:
    """Accepts connections and reads requests, never answers (a hung upstream)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            held.append(conn)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}"
    finally:
        stop.set()
        thread.join()
        for conn in held:
            conn.close()
        server.close()


def test_upstream_timeout_is_a_504_that_says_which_timeout(
    make_service: Callable[..., RoutingService], silent_upstream: str
) -> None:
    service = make_service(upstream_url=silent_upstream, upstream_read_timeout_s=0.3)
    with serve_app(create_app(service.settings, service=service)) as url:
        r = httpx.post(f"{url}/v1/messages", json=_plain("claude-opus-4-6"), timeout=10)
    assert r.status_code == 504
    assert r.json() == {
        "type": "error",
        "error": {
            "type": "timeout_error",
            "message": "tierwise: the upstream did not answer within the read timeout of "
            "0.3 s (ReadTimeout; ROUTER_UPSTREAM_READ_TIMEOUT_S)",
        },
    }

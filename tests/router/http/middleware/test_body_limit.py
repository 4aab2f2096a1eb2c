"""ROUTER_MAX_BODY_BYTES and ROUTER_GATEWAY_MAX_BODY_BYTES at the byte: a body of exactly the
limit is served, one byte more is a 413, whether the size is declared (Content-Length) or only
seen while the body streams in (chunked)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from starlette.types import Message, Receive, Scope, Send

from router.core.service import RoutingService
from router.http.app import create_app
from router.http.middleware.body_limit import BodySizeLimit
from tests.fake_anthropic import FakeAnthropic

LIMIT = 1000
GATEWAY_LIMIT = 3000  # above LIMIT: a gateway body between the two must pass
CHUNK = 64
JSON = {"content-type": "application/json"}


def sized(template: dict[str, Any], size: int) -> bytes:
    """`template` as JSON of exactly `size` bytes: its "PAD" string grows to fit."""
    empty = json.dumps(template).replace("PAD", "").encode()
    body = json.dumps(template).replace("PAD", "x" * (size - len(empty))).encode()
    assert len(body) == size
    return body


def post(
    client: TestClient, path: str, body: bytes, chunked: bool, headers: dict[str, str] = JSON
) -> Any:
    if chunked:  # an iterator body: Transfer-Encoding chunked, no Content-Length
        chunks = [body[i : i + CHUNK] for i in range(0, len(body), CHUNK)]
        r = client.post(path, content=iter(chunks), headers=headers)
        assert "content-length" not in r.request.headers
        return r
    r = client.post(path, content=body, headers=headers)
    assert r.request.headers["content-length"] == str(len(body))
    return r


# --- the middleware alone: which check refuses, and whether the app saw anything -------------


class Recorder:
    """An ASGI app that reads the whole body and answers 200 with its length."""

    def __init__(self) -> None:
        self.called = False
        self.received = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.called = True
        while True:
            message = await receive()
            self.received += len(message.get("body", b""))
            if not message.get("more_body", False):
                break
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": str(self.received).encode()})


def run_middleware(size: int, declared: bool, path: str = "/route") -> tuple[int, bytes, Recorder]:
    body = b"x" * size
    if declared:
        headers = [(b"content-length", str(size).encode())]
        messages = [{"type": "http.request", "body": body, "more_body": False}]
    else:
        headers = [(b"transfer-encoding", b"chunked")]
        parts = [body[i : i + CHUNK] for i in range(0, size, CHUNK)]
        messages = [{"type": "http.request", "body": p, "more_body": True} for p in parts]
        messages.append({"type": "http.request", "body": b"", "more_body": False})
    scope = {"type": "http", "method": "POST", "path": path, "headers": headers}
    sent: list[Message] = []

    async def receive() -> Message:
        return messages.pop(0)

    async def send(message: Message) -> None:
        sent.append(message)

    app = Recorder()
    asyncio.run(BodySizeLimit(app, LIMIT, GATEWAY_LIMIT)(scope, receive, send))
    status = sent[0]["status"]
    return status, b"".join(m.get("body", b"") for m in sent[1:]), app


@pytest.mark.parametrize("size", [LIMIT - 1, LIMIT])
@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
def test_middleware_passes_a_body_up_to_the_limit(size: int, declared: bool) -> None:
    status, body, app = run_middleware(size, declared)
    assert (status, body) == (200, str(size).encode())
    assert app.received == size


def test_middleware_refuses_a_declared_size_over_the_limit_before_reading() -> None:
    status, body, app = run_middleware(LIMIT + 1, declared=True)
    assert status == 413
    assert json.loads(body)["error"]["message"] == (
        f"request body of {LIMIT + 1}+ bytes exceeds the limit of {LIMIT} bytes "
        "(ROUTER_MAX_BODY_BYTES)"
    )
    assert not app.called  # refused on the header alone


def test_middleware_refuses_a_streamed_body_at_the_byte_over_the_limit() -> None:
    status, body, app = run_middleware(LIMIT + 1, declared=False)
    assert status == 413
    assert f"request body of {LIMIT + 1}+ bytes" in json.loads(body)["error"]["message"]
    assert app.received <= LIMIT  # the app never got a byte past the limit


@pytest.mark.parametrize(
    ("size", "status"), [(GATEWAY_LIMIT - 1, 200), (GATEWAY_LIMIT, 200), (GATEWAY_LIMIT + 1, 413)]
)
@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
def test_middleware_gateway_limit_is_its_own(size: int, status: int, declared: bool) -> None:
    got, body, _ = run_middleware(size, declared, path="/v1/messages")
    assert got == status
    if status == 413:
        assert json.loads(body)["error"]["message"].endswith(
            f"exceeds the limit of {GATEWAY_LIMIT} bytes (ROUTER_GATEWAY_MAX_BODY_BYTES)"
        )


# --- the app as configured by Settings: /route and the gateway over HTTP ---------------------


@pytest.fixture
def app_client(
    make_service: Callable[..., RoutingService], fake_anthropic: FakeAnthropic
) -> Iterator[TestClient]:
    # A generous deadline: these tests are about sizes, not a loaded machine's fallbacks.
    service = make_service(
        max_body_bytes=LIMIT,
        gateway_max_body_bytes=GATEWAY_LIMIT,
        upstream_url=fake_anthropic.base_url,
        calllog_url="off",
        deadline_ms=10_000,
    )
    with TestClient(create_app(service.settings, service=service)) as client:  # lifespan: upstream
        yield client


@pytest.mark.parametrize(
    ("size", "status"),
    [(LIMIT - 1, 200), (LIMIT, 200), (LIMIT + 1, 413)],
    ids=["under", "at", "over"],
)
@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_route_body_at_the_limit(
    app_client: TestClient, size: int, status: int, chunked: bool
) -> None:
    r = post(app_client, "/route", sized({"prompt": "PAD"}, size), chunked)
    assert r.status_code == status, r.text[:300]
    if status == 200:
        assert r.json()["fallback"] is False
    else:
        assert r.json()["error"] == {
            "type": "payload_too_large",
            "message": f"request body of {size}+ bytes exceeds the limit of {LIMIT} bytes "
            "(ROUTER_MAX_BODY_BYTES)",
        }


@pytest.mark.parametrize(
    ("size", "status"),
    [(GATEWAY_LIMIT - 1, 200), (GATEWAY_LIMIT, 200), (GATEWAY_LIMIT + 1, 413)],
    ids=["under", "at", "over"],
)
@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_gateway_body_at_its_own_limit(
    app_client: TestClient, fake_anthropic: FakeAnthropic, size: int, status: int, chunked: bool
) -> None:
    template = {
        "model": "claude-opus-4-6",
        "max_tokens": 8,
        "messages": [{"role": "user", "content": "PAD"}],
    }
    headers = JSON | {"x-api-key": "sk-ant-test", "anthropic-version": "2023-06-01"}
    r = post(app_client, "/v1/messages", sized(template, size), chunked, headers)
    assert r.status_code == status, r.text[:300]
    forwarded = fake_anthropic.calls("/v1/messages")
    if status == 200:
        assert len(forwarded) == 1 and r.headers["x-tierwise-fallback"] == "false"
    else:
        assert forwarded == []
        assert r.json()["error"] == {
            "type": "request_too_large",
            "message": f"tierwise: request body of {size}+ bytes exceeds the limit of {GATEWAY_LIMIT} "
            "bytes (ROUTER_GATEWAY_MAX_BODY_BYTES)",
        }

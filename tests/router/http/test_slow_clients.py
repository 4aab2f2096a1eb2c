"""Slow clients cannot hold the server: raw sockets against a real uvicorn. Chunked bodies that
never finish are answered 408 and closed at ROUTER_BODY_TIMEOUT_S while normal requests are
served; past ROUTER_MAX_PENDING_BODIES bodies in flight new ones get 503 at once; headers that
never finish get 408 at ROUTER_HEADER_TIMEOUT_S (router.http.protocol)."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from urllib.parse import urlsplit

import httpx
import pytest

from router.core.service import RoutingService
from router.http.app import create_app
from router.http.protocol import HeaderTimeoutProtocol
from tests.live_server import serve_app

BODY_TIMEOUT_S = 1.0
SLACK_S = 2.0  # scheduling on a busy 2-core machine
SLOW_BODIES = 20


def open_chunked(url: str, path: str = "/route") -> socket.socket:
    """A POST whose chunked body starts and never finishes."""
    parts = urlsplit(url)
    sock = socket.create_connection((parts.hostname, parts.port), timeout=10)
    head = (
        f"POST {path} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
        "transfer-encoding: chunked\r\n\r\n"
    )
    first = b'{"prompt": "'
    sock.sendall(head.encode() + f"{len(first):x}\r\n".encode() + first + b"\r\n")
    return sock


def read_until_closed(sock: socket.socket, limit_s: float) -> tuple[bytes, float]:
    """Everything the server sends until it closes the connection, and when it closed."""
    start = time.monotonic()
    sock.settimeout(limit_s)
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except TimeoutError:
        pass  # still open at the limit
    return data, time.monotonic() - start


@pytest.fixture
def start(make_service: Callable[..., RoutingService]) -> Iterator[Callable[..., str]]:
    servers = []

    def start(**settings: object) -> str:
        service = make_service(deadline_ms=5000, **settings)
        ctx = serve_app(create_app(service.settings, service=service))
        servers.append(ctx)
        return ctx.__enter__()

    yield start
    for ctx in servers:
        ctx.__exit__(None, None, None)


def test_unfinished_bodies_get_408_and_are_closed_while_others_are_served(
    start: Callable[..., str],
) -> None:
    url = start(body_timeout_s=BODY_TIMEOUT_S)
    began = time.monotonic()
    slow = [
        open_chunked(url, "/v1/messages" if i % 4 == 0 else "/route") for i in range(SLOW_BODIES)
    ]
    results: list[tuple[bytes, float]] = [(b"", 0.0)] * SLOW_BODIES

    def watch(i: int) -> None:
        results[i] = read_until_closed(slow[i], BODY_TIMEOUT_S + SLACK_S + 5)

    watchers = [threading.Thread(target=watch, args=(i,)) for i in range(SLOW_BODIES)]
    for w in watchers:
        w.start()
    served = []
    with httpx.Client(base_url=url, timeout=5) as client:
        while time.monotonic() - began < BODY_TIMEOUT_S:
            served.append(client.post("/route", json={"prompt": "hello"}).status_code)
    for w in watchers:
        w.join()
    for s in slow:
        s.close()

    assert served and set(served) == {200}
    for i, (data, _) in enumerate(results):
        head, _, body = data.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 408 "), data[:200]
        assert b"connection: close" in head.lower()
        message = "the request body did not arrive within 1 s (ROUTER_BODY_TIMEOUT_S)"
        if i % 4 == 0:  # the gateway answers in Anthropic's shape
            assert json.loads(body)["error"] == {
                "type": "timeout_error",
                "message": f"tierwise: {message}",
            }
        else:
            assert json.loads(body) == {"error": {"type": "request_timeout", "message": message}}
    took = [t for _, t in results]
    assert BODY_TIMEOUT_S / 2 < min(took) and max(took) < BODY_TIMEOUT_S + SLACK_S, took


def test_too_many_unfinished_bodies_get_503_at_once(start: Callable[..., str]) -> None:
    url = start(body_timeout_s=30, max_pending_bodies=4)
    holding = [open_chunked(url) for _ in range(4)]
    time.sleep(0.3)  # the server has begun reading all four
    extra = open_chunked(url)
    data, took = read_until_closed(extra, 5)
    assert data.startswith(b"HTTP/1.1 503 "), data[:200]
    assert b"ROUTER_MAX_PENDING_BODIES" in data and took < 2
    r = httpx.get(f"{url}/healthz")  # no body: never counted, still served
    assert r.status_code == 200
    for s in [*holding, extra]:
        s.close()


def test_a_response_before_the_body_was_read_closes_the_connection(
    start: Callable[..., str],
) -> None:
    """A 401 refuses before reading: the unread rest of the body must not keep the socket."""
    url = start(auth_tokens=("tok-0123456789",))
    sock = open_chunked(url)
    data, took = read_until_closed(sock, 5)
    sock.close()
    assert data.startswith(b"HTTP/1.1 401 ") and b"connection: close" in data.lower()
    assert took < 2


class QuickHeaders(HeaderTimeoutProtocol):
    header_timeout_s = 1.0


def test_headers_that_never_finish_get_408_and_are_closed(
    make_service: Callable[..., RoutingService],
) -> None:
    service = make_service()
    with serve_app(create_app(service.settings, service=service), http=QuickHeaders) as url:
        parts = urlsplit(url)
        partial = socket.create_connection((parts.hostname, parts.port))
        partial.sendall(b"POST /route HTTP/1.1\r\nhost: x\r\ncontent-le")
        silent = socket.create_connection((parts.hostname, parts.port))
        started = time.monotonic()
        r = httpx.post(f"{url}/route", json={"prompt": "hi"})  # others are served meanwhile
        assert r.status_code == 200
        data, took = read_until_closed(partial, 1.0 + SLACK_S + 5)
        nothing, silent_took = read_until_closed(silent, 1.0 + SLACK_S + 5)
        partial.close()
        silent.close()
    assert data.startswith(b"HTTP/1.1 408 ") and b"ROUTER_HEADER_TIMEOUT_S" in data
    assert nothing == b""  # never said anything: closed without an answer
    assert time.monotonic() - started < 1.0 + SLACK_S
    assert took < 1.0 + SLACK_S and silent_took < 1.0 + SLACK_S

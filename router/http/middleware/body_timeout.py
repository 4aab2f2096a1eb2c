"""BodyTimeout: a request body must arrive within ROUTER_BODY_TIMEOUT_S of its headers (else
408), and at most ROUTER_MAX_PENDING_BODIES bodies are received at once per process (else 503).

Without it a client that sends headers and then trickles (or never finishes) a chunked body holds
a connection, a task and a growing buffer for as long as it likes (slowloris). A response sent
before the body was read in full also closes the connection, so the unread rest cannot hold it.
Headers themselves are bounded by router.http.protocol (the ASGI app never sees them arrive).
"""

from __future__ import annotations

import anyio
import anyio.lowlevel
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from router.http.error_responses import send_json_error

CLOSE = (b"connection", b"close")


def _has_body(scope: Scope) -> bool:
    headers = dict(scope.get("headers") or [])
    length = headers.get(b"content-length")
    return b"transfer-encoding" in headers or (length is not None and length.strip() != b"0")


class BodyTimeout:
    def __init__(self, app: ASGIApp, timeout_s: float, max_pending: int) -> None:
        self.app = app
        self.timeout_s = timeout_s
        self.max_pending = max_pending
        self.pending = 0  # bodies being received now (one event loop: no lock needed)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not _has_body(scope):
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        if self.pending >= self.max_pending:
            await send_json_error(
                send,
                503,
                "overloaded",
                f"{self.pending} request bodies are being received already "
                "(ROUTER_MAX_PENDING_BODIES); retry shortly",
                headers=[CLOSE, (b"retry-after", b"1")],
                path=path,
            )
            return
        self.pending += 1
        deadline = anyio.current_time() + self.timeout_s
        received = timed_out = started = False

        def body_done() -> None:
            nonlocal received
            if not received:
                received = True
                self.pending -= 1

        async def timed_receive() -> Message:
            nonlocal timed_out
            if received:
                return await receive()
            with anyio.move_on_after(deadline - anyio.current_time()):
                message = await receive()
                if message["type"] != "http.request" or not message.get("more_body", False):
                    body_done()
                return message
            # Too slow: stop the app wherever it waits (a cancellation, which no handler's
            # `except Exception` turns into another answer) and answer 408 below.
            timed_out = True
            body_done()
            app_scope.cancel()
            await anyio.lowlevel.checkpoint()
            raise AssertionError("unreachable: the app's scope is cancelled")

        async def closing_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                if not received:
                    message = {**message, "headers": [*message.get("headers", []), CLOSE]}
            await send(message)

        try:
            with anyio.CancelScope() as app_scope:
                await self.app(scope, timed_receive, closing_send)
        finally:
            body_done()
        if timed_out and not started:
            await send_json_error(
                send,
                408,
                "request_timeout",
                f"the request body did not arrive within {self.timeout_s:g} s "
                "(ROUTER_BODY_TIMEOUT_S)",
                headers=[CLOSE],
                path=path,
            )

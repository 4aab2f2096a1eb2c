"""BodyTimeout: a request body must arrive within ROUTER_BODY_TIMEOUT_S of its headers (else
408), and at most ROUTER_MAX_PENDING_BODIES bodies are received at once per process (else 503).

Without it a client that sends headers and then trickles (or never finishes) a chunked body holds
a connection, a task and a growing buffer for as long as it likes (slowloris). A response sent
before the body was read in full also closes the connection, so the unread rest cannot hold it.
Headers themselves are bounded by router.http.protocol (the ASGI app never sees them arrive).
"""

from __future__ import annotations

import asyncio

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
        deadline = asyncio.get_running_loop().time() + self.timeout_s
        received = started = False

        def body_done() -> None:
            nonlocal received
            if not received:
                received = True
                self.pending -= 1

        async def timed_receive() -> Message:
            if received:
                return await receive()
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                body_done()
                raise _BodyTimedOut from None
            if message["type"] != "http.request" or not message.get("more_body", False):
                body_done()
            return message

        async def closing_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                if not received:
                    message = {**message, "headers": [*message.get("headers", []), CLOSE]}
            await send(message)

        timed_out = False
        try:
            await self.app(scope, timed_receive, closing_send)
        except _BodyTimedOut:
            timed_out = True
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


class _BodyTimedOut(BaseException):  # noqa: N818 - a signal, like CancelledError
    """Raised out of receive() at the deadline. A BaseException, like a cancellation, so no
    handler's `except Exception` (FastAPI's body parsing has one) turns it into another answer
    on its way up to BodyTimeout."""

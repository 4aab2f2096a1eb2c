"""Pure ASGI middleware that refuses bodies over a byte limit with 413, before anything parses them.
The gateway (/v1/) may have its own, larger limit: Messages bodies carry base64 images and PDFs."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from router.http.error_responses import GATEWAY_PREFIX, send_json_error


class BodySizeLimit:
    def __init__(self, app: ASGIApp, max_bytes: int, gateway_max_bytes: int | None = None) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.gateway_max_bytes = gateway_max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        limit, setting = self.max_bytes, "ROUTER_MAX_BODY_BYTES"
        if self.gateway_max_bytes is not None and path.startswith(GATEWAY_PREFIX):
            limit, setting = self.gateway_max_bytes, "ROUTER_GATEWAY_MAX_BODY_BYTES"
        message = f"request body of {{size}}+ bytes exceeds the limit of {limit} bytes ({setting})"
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await self._reject(send, message.format(size=int(declared)), path)
            return
        seen = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise _TooLarge(seen)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _TooLarge as exc:
            if not started:
                await self._reject(send, message.format(size=exc.size), path)

    async def _reject(self, send: Send, message: str, path: str) -> None:
        await send_json_error(send, 413, "payload_too_large", message, path=path)


class _TooLarge(Exception):
    def __init__(self, size: int) -> None:
        self.size = size

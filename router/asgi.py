"""Pure-ASGI helpers for middleware that must answer before the app (and its handlers) run,
and for work on request bodies that must not stall the event loop.

Under /v1/ (the Anthropic-shaped gateway) errors take Anthropic's shape and type names, so
Anthropic SDKs raise their usual exceptions; everywhere else the service's own shape."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import anyio
from starlette.types import Send

T = TypeVar("T")

GATEWAY_PREFIX = "/v1/"
# Bodies from this size on are parsed, checked or re-serialized in a worker thread (base64
# images), so one big body cannot stall the event loop.
THREAD_BODY_BYTES = 256 * 1024
# Our error type -> Anthropic's, for answers under /v1/.
ANTHROPIC_TYPES = {
    "invalid_json": "invalid_request_error",
    "invalid_path": "invalid_request_error",
    "unauthorized": "authentication_error",
    "payload_too_large": "request_too_large",
}


def error_content(kind: str, message: str) -> dict[str, Any]:
    """The service's one error shape: {"error": {"type": ..., "message": ...}}."""
    return {"error": {"type": kind, "message": message}}


def anthropic_error_content(kind: str, message: str) -> dict[str, Any]:
    """The error shape the Anthropic SDKs parse: {"type": "error", "error": {type, message}}."""
    return {"type": "error", "error": {"type": kind, "message": message}}


def error_body(kind: str, message: str) -> bytes:
    return json.dumps(error_content(kind, message)).encode()


def anthropic_error_body(kind: str, message: str) -> bytes:
    """Our error `kind` in Anthropic's terms, the message marked as tierwise's own."""
    content = anthropic_error_content(ANTHROPIC_TYPES.get(kind, kind), f"tierwise: {message}")
    return json.dumps(content).encode()


async def send_json_error(
    send: Send,
    status: int,
    kind: str,
    message: str,
    headers: Sequence[tuple[bytes, bytes]] = (),
    path: str = "",
) -> None:
    gateway = path.startswith(GATEWAY_PREFIX)
    body = anthropic_error_body(kind, message) if gateway else error_body(kind, message)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def offload(size: int, fn: Callable[..., T], *args: Any) -> T:
    """fn(*args), in a worker thread when the body it works on is `size` >= THREAD_BODY_BYTES."""
    if size < THREAD_BODY_BYTES:
        return fn(*args)
    return await anyio.to_thread.run_sync(fn, *args)

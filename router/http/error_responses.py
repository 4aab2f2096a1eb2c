"""The service's error bodies, as FastAPI responses and as raw ASGI sends (for middleware that
answers before the app runs).

Under /v1/ (the Anthropic-shaped gateway) errors take Anthropic's shape and type names, so
Anthropic SDKs raise their usual exceptions; everywhere else the service's own shape."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from fastapi.responses import JSONResponse
from starlette.types import Send

GATEWAY_PREFIX = "/v1/"
# Our error type -> Anthropic's, for answers under /v1/.
ANTHROPIC_TYPES = {
    "invalid_json": "invalid_request_error",
    "invalid_path": "invalid_request_error",
    "unauthorized": "authentication_error",
    "payload_too_large": "request_too_large",
    "request_timeout": "timeout_error",
    "overloaded": "overloaded_error",
}


def error_content(kind: str, message: str) -> dict[str, Any]:
    """The service's one error shape: {"error": {"type": ..., "message": ...}}."""
    return {"error": {"type": kind, "message": message}}


def anthropic_error_content(kind: str, message: str) -> dict[str, Any]:
    """The error shape the Anthropic SDKs parse: {"type": "error", "error": {type, message}}."""
    return {"type": "error", "error": {"type": kind, "message": message}}


def json_error(status: int, kind: str, message: str) -> JSONResponse:
    """The service's error shape as a response."""
    return JSONResponse(status_code=status, content=error_content(kind, message))


def anthropic_error(status: int, kind: str, message: str) -> JSONResponse:
    """An Anthropic-shaped error response; `kind` is already one of Anthropic's error types."""
    return JSONResponse(status_code=status, content=anthropic_error_content(kind, message))


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

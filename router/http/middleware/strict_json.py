"""StrictJsonBody: one gate every JSON request body passes before any handler parses it.

json.loads accepts things later code chokes on: invalid UTF-8, lone UTF-16 surrogates
("\\ud800"), NaN/Infinity, 1e999 (-> inf), 5000-digit integers and 10,000-deep nesting (a
RecursionError wherever the tree is walked). This middleware refuses them with a 422 naming the
problem, so handlers, observers and the gateway only ever see plain, finite, valid JSON.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from router.errors import InvalidJsonError
from router.http.error_responses import GATEWAY_PREFIX, send_json_error
from router.http.json_scan import json_depth
from router.http.offload import offload

# Deepest nesting of arrays/objects accepted; Messages-API bodies (tool inputs and schemas
# included) rarely pass 20, and anything under ~900 would still parse but risk RecursionErrors.
MAX_JSON_DEPTH = 64
# Integers must fit in 64 bits: JSON peers (JavaScript, SQLite, Postgres) cannot hold more.
MAX_JSON_INT = 2**63 - 1

_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
# Digits in a row from which a number may not fit in 64 bits (2**63 has 19 digits); the strict
# parser then looks at it.
_LONG_NUMBER = b"0" * 19
_DIGITS_TO_ZERO = bytes.maketrans(b"0123456789", b"0" * 10)
# Where StrictJsonBody leaves the parsed body in the ASGI scope (router.http.json_body reads it).
PARSED_JSON = "tierwise.parsed_json"


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise InvalidJsonError(f"number {text[:40]} is out of range for a 64-bit float")
    return value


def _bounded_int(text: str) -> int:
    if len(text) > 20 or abs(value := int(text)) > MAX_JSON_INT:
        raise InvalidJsonError(f"integer {text[:40]}... does not fit in 64 bits")
    return value


def _no_constant(name: str) -> Any:
    raise InvalidJsonError(f"{name} is not valid JSON: numbers must be finite")


def parse_json(body: bytes) -> Any:
    """Parse a request body strictly; raises InvalidJsonError with a message naming the problem.

    Most bodies take the fast path: the depth and long-number checks on the bytes, then orjson,
    which itself refuses invalid UTF-8, a BOM, lone surrogates, NaN/Infinity and floats that
    overflow. A body it refuses, or that holds 19 digits in a row (a number that may not fit in
    64 bits), goes to the strict stdlib parse, which accepts the same JSON and names the problem.
    """
    # No deeper than the count of "[" and "{"; most bodies are settled by that alone.
    opens = body.count(b"[") + body.count(b"{")
    depth = json_depth(body) if opens > MAX_JSON_DEPTH else None
    if (depth or 0) <= MAX_JSON_DEPTH and _LONG_NUMBER not in body.translate(_DIGITS_TO_ZERO):
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError:
            pass
    return _parse_strictly(body, json_depth(body) if depth is None else depth)


def _parse_strictly(body: bytes, depth: int) -> Any:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidJsonError(
            f"body is not valid UTF-8: byte 0x{body[exc.start]:02x} at offset {exc.start}"
        ) from None
    if depth > MAX_JSON_DEPTH:
        raise InvalidJsonError(
            f"body nests arrays/objects {depth} deep; at most {MAX_JSON_DEPTH} levels allowed"
        )
    try:
        value = json.loads(
            text, parse_float=_finite_float, parse_int=_bounded_int, parse_constant=_no_constant
        )
    except json.JSONDecodeError as exc:
        raise InvalidJsonError(f"body is not valid JSON: {exc}") from None
    except RecursionError:  # unreachable after the depth check; kept as a last guard
        raise InvalidJsonError("body nests too deeply to parse") from None
    if _SURROGATE_ESCAPE.search(body):  # "\ud83d\ude00" pairs are fine; lone halves are not
        try:
            json.dumps(value, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError as exc:
            raise InvalidJsonError(
                f"body holds a lone UTF-16 surrogate escape (\\u{ord(exc.object[exc.start]):04x}); "
                "strings must be valid Unicode"
            ) from None
    return value


def is_json_content_type(content_type: str) -> bool:
    """No content-type, application/json or any +json type (parameters such as charset aside)."""
    media = content_type.split(";")[0].strip().lower()
    return media in ("", "application/json") or media.endswith("+json")


def _is_json(scope: Scope) -> bool:
    for name, value in scope.get("headers") or ():
        if name == b"content-type":
            return is_json_content_type(value.decode("latin-1"))
    return True


class StrictJsonBody:
    """Reads a JSON body in full (so mount it inside BodySizeLimit), checks it with parse_json,
    and replays the same bytes to the app, with the parsed value in scope[PARSED_JSON] so no
    handler parses it again; non-JSON and empty bodies pass through untouched."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not _is_json(scope):
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return  # the client left; nobody to answer
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        if body.strip():
            try:
                scope[PARSED_JSON] = await offload(len(body), parse_json, body)
            except InvalidJsonError as exc:
                path = scope.get("path", "")
                # Anthropic answers malformed JSON with 400; the gateway does the same.
                status = 400 if path.startswith(GATEWAY_PREFIX) else exc.status_code
                await send_json_error(send, status, "invalid_json", str(exc), path=path)
                return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

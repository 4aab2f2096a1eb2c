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

import numpy as np
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from router.errors import InvalidJsonError
from router.http.error_responses import GATEWAY_PREFIX, send_json_error
from router.http.offload import offload

# Deepest nesting of arrays/objects accepted; Messages-API bodies (tool inputs and schemas
# included) rarely pass 20, and anything under ~900 would still parse but risk RecursionErrors.
MAX_JSON_DEPTH = 64
# Integers must fit in 64 bits: JSON peers (JavaScript, SQLite, Postgres) cannot hold more.
MAX_JSON_INT = 2**63 - 1

_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
# Brackets are counted in slices of this many bytes, so a 32 MB gateway body needs a few MB of
# scratch memory, not ten times its size.
_SLICE = 1 << 20


def json_depth(body: bytes) -> int:
    """Deepest array/object nesting in `body`, ignoring brackets inside strings; no recursion."""
    skeleton = np.frombuffer(_STRING.sub(b'""', body), dtype=np.uint8)
    depth = deepest = 0
    for start in range(0, len(skeleton), _SLICE):
        # "[" 0x5B and "{" 0x7B both become 0x7B with bit 0x20 set; "]" and "}" become 0x7D.
        folded = skeleton[start : start + _SLICE] | 0x20
        brackets = folded[(folded == 0x7B) | (folded == 0x7D)]
        if not len(brackets):
            continue
        running = depth + np.cumsum(np.where(brackets == 0x7B, 1, -1), dtype=np.int64)
        deepest = max(deepest, int(running.max()))
        depth = int(running[-1])
    return deepest


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
    """Parse a request body strictly; raises InvalidJsonError with a message naming the problem."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidJsonError(
            f"body is not valid UTF-8: byte 0x{body[exc.start]:02x} at offset {exc.start}"
        ) from None
    depth = json_depth(body)
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


def _is_json(scope: Scope) -> bool:
    headers = dict(scope.get("headers") or [])
    content_type = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
    return content_type in (b"", b"application/json") or content_type.endswith(b"+json")


class StrictJsonBody:
    """Reads a JSON body in full (so mount it inside BodySizeLimit), checks it with parse_json,
    and replays the same bytes to the app; non-JSON and empty bodies pass through untouched."""

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
                await offload(len(body), parse_json, body)
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

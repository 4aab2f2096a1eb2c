"""Optional bearer-token auth as pure ASGI middleware, so every route (including routers other
modules add) is covered by default and /healthz, /readyz stay open for probes.

Caller tokens (ROUTER_AUTH_TOKENS) guard everything but OPEN_PATHS; admin tokens
(ROUTER_ADMIN_TOKENS) guard /admin/*. Tokens arrive as `Authorization: Bearer <t>` or
`x-tierwise-token: <t>`; under /v1/ (the Anthropic-shaped gateway) only x-tierwise-token
counts, because Authorization and x-api-key there belong to Anthropic. Presented tokens are
hashed and compared against every configured token with hmac.compare_digest, so timing tells
nothing about which token or how much of it matched. Tokens never appear in logs or errors.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Sequence

from starlette.types import ASGIApp, Receive, Scope, Send

from router.errors import BadRequestError
from router.http.error_responses import GATEWAY_PREFIX, send_json_error
from router.settings import Settings

log = logging.getLogger(__name__)

# Liveness/readiness probes and the API description never need a token.
OPEN_PATHS = frozenset({"/healthz", "/readyz", "/docs", "/docs/oauth2-redirect", "/openapi.json"})
ADMIN_PREFIX = "/admin/"
TOKEN_HEADER = b"x-tierwise-token"
REALM = 'Bearer realm="tierwise"'


def _digest(token: bytes) -> bytes:
    return hashlib.sha256(token).digest()


def token_digests(tokens: Sequence[str], setting: str) -> tuple[bytes, ...]:
    """sha256 of each token; a token must be visible ASCII (it travels in an HTTP header).
    Errors name the setting and position, never the token."""
    out = []
    for i, token in enumerate(tokens):
        if not token or not all(0x21 <= ord(c) <= 0x7E for c in token):
            raise BadRequestError(
                f"{setting}: token #{i + 1} must be non-empty visible ASCII without spaces"
            )
        out.append(_digest(token.encode("ascii")))
    return tuple(out)


def matches(presented: bytes, digests: Sequence[bytes]) -> bool:
    """Constant time in the presented token and over all configured ones (no early exit)."""
    candidate = _digest(presented)
    found = False
    for digest in digests:
        found |= hmac.compare_digest(candidate, digest)
    return found


def presented_token(scope: Scope, path: str) -> bytes | None:
    headers = dict(scope.get("headers") or [])
    token = headers.get(TOKEN_HEADER)
    if token is None and not path.startswith(GATEWAY_PREFIX):
        scheme, _, value = headers.get(b"authorization", b"").partition(b" ")
        if scheme.lower() == b"bearer" and value.strip():
            token = value.strip()
    return token


def auth_options(settings: Settings) -> dict[str, tuple[bytes, ...]]:
    """BearerAuth's keyword arguments. Checks every token now (at create_app), so a bad one
    stops startup with an error naming its setting and position instead of failing later."""
    caller = token_digests(
        [t.get_secret_value() for t in settings.auth_tokens], "ROUTER_AUTH_TOKENS"
    )
    admin = token_digests(
        [t.get_secret_value() for t in settings.admin_tokens], "ROUTER_ADMIN_TOKENS"
    )
    if not caller and not admin:
        log.warning("auth is off: set ROUTER_AUTH_TOKENS / ROUTER_ADMIN_TOKENS to require tokens")
    return {"caller": caller, "admin": admin}


class BearerAuth:
    def __init__(self, app: ASGIApp, caller: tuple[bytes, ...], admin: tuple[bytes, ...]) -> None:
        """`caller`, `admin`: sha256 digests of the tokens, from auth_options()."""
        self.app = app
        self.caller = caller
        # Without admin tokens, /admin/* takes the caller tokens (and is open if those are off);
        # admin tokens also work wherever a caller token does.
        self.admin = admin or caller
        self.caller_accepts = caller + admin

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):  # lifespan
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        admin = path.startswith(ADMIN_PREFIX)
        required = self.admin if admin else self.caller
        if not required or path in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        token = presented_token(scope, path)
        if token is not None and matches(token, self.admin if admin else self.caller_accepts):
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":  # none today; a future one is guarded all the same
            await send({"type": "websocket.close", "code": 1008})  # policy violation
            return
        header = "x-tierwise-token" if path.startswith(GATEWAY_PREFIX) else "Authorization: Bearer"
        kind = "admin token (ROUTER_ADMIN_TOKENS)" if admin else "token (ROUTER_AUTH_TOKENS)"
        if token is None:
            message = f"{path} needs a {kind}: send it as {header} <token>"
            challenge = REALM
        else:
            message = f"the token sent is not a valid {kind} for {path}"
            challenge = f'{REALM}, error="invalid_token"'
        await send_json_error(
            send,
            401,
            "unauthorized",
            message,
            [(b"www-authenticate", challenge.encode())],
            path=path,
        )

"""What the gateway says when the upstream fails: the error's name and message, and which of
its timeouts ran out (never an empty "()")."""

from __future__ import annotations

import httpx

from router.settings import Settings


def describe(exc: BaseException) -> str:
    """'Name: message', or just the name when the exception has no message (httpx's often
    have none: 'ReadTimeout: ' would read as if something were cut off)."""
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def timed_out(exc: httpx.TimeoutException, settings: Settings) -> str:
    """Which of the upstream timeouts ran out, how long it is, and the setting that sets it."""
    if isinstance(exc, httpx.ConnectTimeout):
        kind, seconds = "connect", settings.upstream_connect_timeout_s
        setting = "ROUTER_UPSTREAM_CONNECT_TIMEOUT_S"
    else:  # read, write and pool timeouts all take the read timeout (upstream_client)
        kind = {httpx.WriteTimeout: "write", httpx.PoolTimeout: "pool"}.get(type(exc), "read")
        seconds, setting = settings.upstream_read_timeout_s, "ROUTER_UPSTREAM_READ_TIMEOUT_S"
    return (
        f"the upstream did not answer within the {kind} timeout of {seconds:g} s "
        f"({type(exc).__name__}; {setting})"
    )

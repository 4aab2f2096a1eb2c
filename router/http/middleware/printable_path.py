"""PrintablePath: refuse request paths that decode to control characters (%00-%1F, %7F).

No route needs them, and a handler that builds a URL or a log line from the path (the gateway's
passthrough forwards /v1/<path> upstream) would otherwise crash or smuggle a newline along.
"""

from __future__ import annotations

import re

from starlette.types import ASGIApp, Receive, Scope, Send

from router.http.error_responses import send_json_error

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class PrintablePath:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path: str = scope.get("path", "")
            bad = _CONTROL.search(path)
            if bad is not None:
                message = (
                    f"request path holds control character 0x{ord(bad.group()):02x} at offset "
                    f"{bad.start()}; paths must be printable"
                )
                await send_json_error(send, 400, "invalid_path", message, path=path)
                return
        await self.app(scope, receive, send)

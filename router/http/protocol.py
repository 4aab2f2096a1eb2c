"""HeaderTimeoutProtocol: uvicorn's httptools protocol with a bound on the time to receive a
request's headers (ROUTER_HEADER_TIMEOUT_S), which uvicorn lacks.

The clock starts when a connection opens and when the first byte of each further request
arrives; the idle time between requests is uvicorn's keep-alive timeout. A request whose headers
are still incomplete at the bound gets a 408 and the connection is closed; a connection that
sent nothing at all is just closed. `tierwise serve` runs uvicorn with it (the uvicorn CLI's
--http takes only built-in names); bodies are bounded by router.http.middleware.body_timeout.
"""

from __future__ import annotations

import asyncio
import json

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from router.settings import get_settings

_MESSAGE = "the request headers did not arrive within {timeout:g} s (ROUTER_HEADER_TIMEOUT_S)"


def _timeout_response(timeout_s: float) -> bytes:
    body = json.dumps(
        {"error": {"type": "request_timeout", "message": _MESSAGE.format(timeout=timeout_s)}}
    ).encode()
    head = (
        "HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    return head.encode() + body


class HeaderTimeoutProtocol(HttpToolsProtocol):
    # None: ROUTER_HEADER_TIMEOUT_S (read once per process); a subclass may fix it (tests).
    header_timeout_s: float | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._header_timer: asyncio.TimerHandle | None = None
        self._request_begun = False
        self._arm()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._request_begun = True
        if self._header_timer is None:  # a new connection's clock already runs
            self._arm()

    def on_headers_complete(self) -> None:
        self._disarm()
        self._request_begun = False
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _timeout_s(self) -> float:
        return self.header_timeout_s or get_settings().header_timeout_s

    def _arm(self) -> None:
        self._disarm()
        self._header_timer = self.loop.call_later(self._timeout_s(), self._headers_timed_out)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_timed_out(self) -> None:
        self._header_timer = None
        if self.transport.is_closing():
            return
        if self.cycle is not None and not self.cycle.response_complete:
            return  # a response is on its way; the next request waits its turn
        if self._request_begun:
            self.transport.write(_timeout_response(self._timeout_s()))
        self.transport.close()

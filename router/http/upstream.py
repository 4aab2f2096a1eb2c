"""The gateway's client for its one upstream (ROUTER_UPSTREAM_URL): `Upstream` builds httpx
requests and sends them on `PooledTransport`, keep-alive HTTP/1.1 connections on asyncio with the
request written in one piece and responses parsed by httptools (the C parser uvicorn serves
with). httpx.AsyncClient on its default transport (httpcore + h11, pure Python) spent about 1 ms
of CPU per proxied call; this spends a fraction of that. Responses are httpx.Response objects
and errors httpx's exceptions, so timeouts, decoding and streaming behave as before. A proxy
relays: no cookie jar (an upstream cookie must not reach the next caller) and no redirects.

It speaks HTTP/1.1, over TLS for https:// (the system's trust store), and nothing more: no
HTTP/2, no HTTP proxy. When HTTPS_PROXY / HTTP_PROXY / ALL_PROXY name a proxy for the upstream
(and NO_PROXY does not exempt it), `environment_proxy` says so and `upstream_client` sends
through httpx's own transport instead, which tunnels through it.
"""

from __future__ import annotations

import asyncio
import ssl
import time
import urllib.request
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httptools
import httpx

from router.settings import Settings

# Response bytes buffered before reading from the upstream pauses (a caller slower than it).
MAX_BUFFERED_BYTES = 1 << 20


class _Connection(asyncio.Protocol):
    """One upstream connection; parses one response at a time into a head and body chunks."""

    def __init__(self) -> None:
        self.key: tuple[str, str, int] = ("", "", 0)  # scheme, host, port: its pool
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self._until_close = False  # a body without length or chunks ends when the connection does
        self._interim = False  # parsing a 1xx response: skipped, the real one follows
        self.keep_alive = False  # the finished response allows another on this connection
        self.error: Exception | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._parser: httptools.HttpResponseParser | None = None
        self.headers: list[tuple[bytes, bytes]] = []
        self.head_done = self.body_done = False
        self.chunks: deque[bytes] = deque()
        self._buffered = 0
        self._paused = False
        self.idle_since = 0.0  # time.monotonic() when it went back to the pool

    # ---- asyncio.Protocol -------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's are not subclasses

    def data_received(self, data: bytes) -> None:
        if self._parser is None:  # bytes nobody asked for: the connection is unusable
            self.close()
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self.error = httpx.RemoteProtocolError(f"malformed response from the upstream: {exc}")
            self.close()
        except httptools.HttpParserUpgrade:  # a 101 nobody asked for
            self.error = httpx.RemoteProtocolError("the upstream switched protocols (101)")
            self.close()
        if self._buffered > MAX_BUFFERED_BYTES and not self._paused and self.transport:
            self.transport.pause_reading()
            self._paused = True
        self._wake()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.head_done and self._until_close:
            self.body_done = True
        self._wake()

    # ---- httptools callbacks ----------------------------------------------------------------
    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        assert self._parser is not None
        if self._parser.get_status_code() < 200:  # 100 Continue, 103 Early Hints: not the answer
            self._interim = True
            self.headers = []
            return
        self.head_done = True
        names = {name.lower() for name, _ in self.headers}
        self._until_close = b"content-length" not in names and b"transfer-encoding" not in names

    def on_body(self, body: bytes) -> None:
        self.chunks.append(body)
        self._buffered += len(body)

    def on_message_complete(self) -> None:
        if self._interim:  # llhttp ends a 1xx as a message of its own; the answer follows
            self._interim = False
            return
        self.body_done = True
        assert self._parser is not None
        self.keep_alive = self._parser.should_keep_alive()  # llhttp forgets it once past here

    # ---- used by PooledTransport ------------------------------------------------------------
    def start(self, request_bytes: bytes) -> None:
        """Send one request and get ready to parse its response."""
        assert self.transport is not None
        self._parser = httptools.HttpResponseParser(self)
        self.headers, self.chunks, self._buffered = [], deque(), 0
        self.head_done = self.body_done = self._until_close = self.keep_alive = False
        self._interim = False
        if self._paused:  # the last response was buffered to the limit and left unread
            self.transport.resume_reading()
            self._paused = False
        self.transport.write(request_bytes)

    @property
    def status_code(self) -> int:
        assert self._parser is not None
        return int(self._parser.get_status_code())

    @property
    def reusable(self) -> bool:
        return not self.closed and self.body_done and self.keep_alive

    async def wait(self, timeout: float | None) -> None:
        """Until more of the response arrives or the connection ends; ReadTimeout after timeout."""
        if self.error is not None:
            raise self.error
        if self.closed:
            raise httpx.RemoteProtocolError("the upstream closed the connection mid-response")
        self._waiter = asyncio.get_running_loop().create_future()
        try:
            async with asyncio.timeout(timeout):
                await self._waiter
        except TimeoutError:
            raise httpx.ReadTimeout("the upstream sent nothing in time") from None
        finally:
            self._waiter = None

    def take(self) -> bytes:
        data = b"".join(self.chunks)
        self.chunks.clear()
        self._buffered = 0
        if self._paused and self.transport is not None:
            self.transport.resume_reading()
            self._paused = False
        return data

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)


class _Body(httpx.AsyncByteStream):
    """The response body as it arrives; the connection goes back to the pool once it is all read."""

    def __init__(self, conn: _Connection, pool: PooledTransport, read_timeout: float | None):
        self.conn, self.pool, self.read_timeout = conn, pool, read_timeout
        self.released = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        conn = self.conn
        while True:
            if conn.chunks:
                yield conn.take()
            elif conn.body_done:
                break
            else:
                await conn.wait(self.read_timeout)

    async def aclose(self) -> None:
        if not self.released:
            self.released = True
            self.pool.release(self.conn)


class PooledTransport(httpx.AsyncBaseTransport):
    """HTTP/1.1 with keep-alive to the hosts it is asked for, at most `max_idle` idle connections
    kept, each for at most `keepalive_expiry` seconds (httpx's default: servers close idle
    connections too, and one reused just as the server closes it fails a request that cannot be
    retried); a failed connect is retried `retries` times, a sent request never (it may be
    billed)."""

    def __init__(self, max_idle: int = 100, retries: int = 1, keepalive_expiry: float = 5.0):
        self.max_idle = max_idle
        self.retries = retries
        self.keepalive_expiry = keepalive_expiry
        self._idle: dict[tuple[str, str, int], list[_Connection]] = {}
        self._open: set[_Connection] = set()  # idle or in use, all closed by aclose()
        self._ssl: ssl.SSLContext | None = None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        timeouts = request.extensions.get("timeout", {})
        url = request.url
        key = (url.scheme, url.host, url.port or (443 if url.scheme == "https" else 80))
        content = await request.aread()
        conn = await self._checkout(key, timeouts.get("connect"))
        try:
            conn.start(_request_head(request, len(content)) + content)
            while not conn.head_done:
                await conn.wait(timeouts.get("read"))
        except BaseException:
            conn.close()
            self._open.discard(conn)
            raise
        return httpx.Response(
            conn.status_code,
            headers=conn.headers,
            stream=_Body(conn, self, timeouts.get("read")),
            extensions={"http_version": b"HTTP/1.1"},
        )

    def release(self, conn: _Connection) -> None:
        """Back to the pool if the response was read to its end and may be followed by another."""
        idle = self._idle.setdefault(conn.key, [])
        if conn.reusable and len(idle) < self.max_idle:
            conn.idle_since = time.monotonic()
            idle.append(conn)
        else:
            conn.close()
            self._open.discard(conn)

    async def aclose(self) -> None:
        for conn in self._open:
            conn.close()
        self._open.clear()
        self._idle.clear()

    async def _checkout(self, key: tuple[str, str, int], timeout: float | None) -> _Connection:
        idle = self._idle.get(key, [])
        while idle:
            conn = idle.pop()
            fresh = time.monotonic() - conn.idle_since < self.keepalive_expiry
            if fresh and not conn.closed and conn.transport and not conn.transport.is_closing():
                return conn
            conn.close()
            self._open.discard(conn)
        scheme, host, port = key
        for attempt in range(self.retries + 1):
            try:
                return await self._connect(scheme, host, port, timeout)
            except httpx.ConnectError:
                if attempt == self.retries:
                    raise
        raise AssertionError("unreachable")

    async def _connect(
        self, scheme: str, host: str, port: int, timeout: float | None
    ) -> _Connection:
        loop = asyncio.get_running_loop()
        tls = self._tls() if scheme == "https" else None
        try:
            async with asyncio.timeout(timeout):
                _, conn = await loop.create_connection(
                    _Connection, host, port, ssl=tls, server_hostname=host if tls else None
                )
        except TimeoutError:
            raise httpx.ConnectTimeout(f"connecting to {host}:{port} timed out") from None
        except OSError as exc:
            raise httpx.ConnectError(f"cannot connect to {host}:{port}: {exc}") from exc
        conn.key = (scheme, host, port)
        self._open.add(conn)
        return conn

    def _tls(self) -> ssl.SSLContext:
        if self._ssl is None:  # system trust store (SSL_CERT_FILE / SSL_CERT_DIR honoured)
            self._ssl = ssl.create_default_context()
        return self._ssl


def _request_head(request: httpx.Request, length: int) -> bytes:
    """Request line and headers; the length is ours, so a body is never sent chunked."""
    lines = [b"%s %s HTTP/1.1" % (request.method.encode(), request.url.raw_path)]
    lines += [
        name + b": " + value
        for name, value in request.headers.raw
        if name.lower() not in (b"content-length", b"transfer-encoding")
    ]
    if length or request.method not in ("GET", "HEAD", "DELETE", "OPTIONS"):
        lines.append(b"content-length: %d" % length)
    return b"\r\n".join(lines) + b"\r\n\r\n"


class Upstream:
    """Requests to `base_url` with `timeout`, sent on `transport` (a PooledTransport)."""

    def __init__(
        self, base_url: str, timeout: httpx.Timeout, transport: httpx.AsyncBaseTransport
    ) -> None:
        base = httpx.URL(base_url)
        self.base = base.copy_with(raw_path=base.raw_path.rstrip(b"/") + b"/")
        self.timeout = timeout
        self.transport = transport

    def build_request(
        self, method: str, path: str, query: str, headers: dict[str, str], content: bytes
    ) -> httpx.Request:
        """`path` (and the caller's raw `query`) below the base URL, as httpx.AsyncClient would."""
        raw_path = self.base.raw_path + httpx.URL(path).raw_path.lstrip(b"/")
        url = self.base.copy_with(raw_path=raw_path + (b"?" + query.encode() if query else b""))
        request = httpx.Request(method, url, headers=headers, content=content)
        request.extensions["timeout"] = self.timeout.as_dict()
        return request

    async def send(self, request: httpx.Request) -> httpx.Response:
        """The response with its body still streaming; close it (aclose) when done."""
        response = await self.transport.handle_async_request(request)
        response.request = request
        return response

    async def aclose(self) -> None:
        await self.transport.aclose()


@asynccontextmanager
async def upstream_client(settings: Settings) -> AsyncIterator[Upstream]:
    """One upstream client for the app's lifetime (AppState.upstream), on pooled connections."""
    timeout = httpx.Timeout(
        settings.upstream_read_timeout_s, connect=settings.upstream_connect_timeout_s
    )
    # One retry of a failed *connect* (never of a sent request: that could bill twice).
    transport: httpx.AsyncBaseTransport = PooledTransport(max_idle=100, retries=1)
    proxy = environment_proxy(settings.upstream_url)
    if proxy is not None:  # HTTPS_PROXY and friends: httpx's transport tunnels through it
        limits = httpx.Limits(max_connections=1000, max_keepalive_connections=100)
        transport = httpx.AsyncHTTPTransport(proxy=proxy, retries=1, limits=limits)
    client = Upstream(settings.upstream_url, timeout, transport)
    try:
        yield client
    finally:
        await client.aclose()


def environment_proxy(url: str) -> str | None:
    """The proxy the environment names for `url` (HTTPS_PROXY, HTTP_PROXY, ALL_PROXY, any case),
    unless NO_PROXY exempts its host; None when there is none."""
    target = httpx.URL(url)
    proxies = urllib.request.getproxies_environment()
    proxy = proxies.get(target.scheme) or proxies.get("all")
    if not proxy or urllib.request.proxy_bypass(target.host):
        return None
    return proxy

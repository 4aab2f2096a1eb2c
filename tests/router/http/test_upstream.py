"""PooledTransport and Upstream against a real socket server that answers as scripted: keep-alive
reuse, every way a response can end, timeouts and broken connections as httpx's errors."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import httpx
import pytest

from router.http import upstream as upstream_module
from router.http.upstream import PooledTransport, Upstream, environment_proxy, upstream_client
from router.settings import Settings

Answer = Callable[[asyncio.StreamReader, asyncio.StreamWriter, bytes], Awaitable[bool]]
TIMEOUT = httpx.Timeout(2.0, connect=2.0)


@dataclass
class Script:
    """A loopback server: each request's head and body are recorded, `answer` replies and says
    whether to keep the connection open."""

    answer: Answer
    connections: int = 0
    requests: list[bytes] = field(default_factory=list)
    handlers: set[asyncio.Task[None]] = field(default_factory=set)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        task = asyncio.current_task()
        assert task is not None
        self.handlers.add(task)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    (int(line.split(b":")[1]) for line in head.split(b"\r\n")
                     if line.lower().startswith(b"content-length:")),
                    0,
                )  # fmt: skip
                request = head + await reader.readexactly(length)
                self.requests.append(request)
                if not await self.answer(reader, writer, request):
                    break
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        writer.close()
        await writer.wait_closed()


async def ok(_: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes) -> bool:
    body = b"echo:" + request.split(b"\r\n\r\n", 1)[1]
    writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body))
    return True


def run(answer: Answer, client: Callable[[Upstream, Script], Awaitable[None]]) -> Script:
    async def main() -> Script:
        script = Script(answer)
        server = await asyncio.start_server(script.handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        upstream = Upstream(f"http://127.0.0.1:{port}/base", TIMEOUT, PooledTransport())
        try:
            await client(upstream, script)
        finally:
            await upstream.aclose()
            server.close()
            await server.wait_closed()
            for task in script.handlers:
                task.cancel()
            await asyncio.gather(*script.handlers, return_exceptions=True)
        return script

    return asyncio.run(main())


async def post(upstream: Upstream, content: bytes = b"{}", path: str = "/v1/messages") -> bytes:
    response = await upstream.send(upstream.build_request("POST", path, "a=1", {}, content))
    try:
        return await response.aread()
    finally:
        await response.aclose()


def test_requests_share_one_kept_alive_connection_and_arrive_intact() -> None:
    async def client(upstream: Upstream, _: Script) -> None:
        for n in range(5):
            assert await post(upstream, b'{"n": %d}' % n) == b'echo:{"n": %d}' % n

    script = run(ok, client)
    assert script.connections == 1
    head = script.requests[0].split(b"\r\n")
    assert head[0] == b"POST /base/v1/messages?a=1 HTTP/1.1"
    assert b"content-length: 8" in head and not any(b"chunked" in h for h in head)


def test_a_chunked_stream_arrives_piece_by_piece_and_the_connection_is_reused() -> None:
    async def chunked(_: asyncio.StreamReader, writer: asyncio.StreamWriter, __: bytes) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
        for event in (b"event: a\n\n", b"event: b\n\n"):
            writer.write(b"%x\r\n%s\r\n" % (len(event), event))
            await writer.drain()
            await asyncio.sleep(0.05)
        writer.write(b"0\r\n\r\n")
        return True

    async def client(upstream: Upstream, _: Script) -> None:
        for _ in range(2):
            response = await upstream.send(upstream.build_request("POST", "/s", "", {}, b"{}"))
            pieces = [piece async for piece in response.aiter_bytes()]
            await response.aclose()
            assert b"".join(pieces) == b"event: a\n\nevent: b\n\n" and len(pieces) >= 2

    assert run(chunked, client).connections == 1


@pytest.mark.parametrize("ending", ["until close", "connection: close"])
def test_a_response_that_ends_the_connection_is_read_whole_and_not_reused(ending: str) -> None:
    async def closing(_: asyncio.StreamReader, writer: asyncio.StreamWriter, __: bytes) -> bool:
        if ending == "until close":  # no length, no chunks: the body runs to the end
            writer.write(b"HTTP/1.1 200 OK\r\n\r\nall of it")
        else:
            writer.write(
                b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 9\r\n\r\nall of it"
            )
        return False

    async def client(upstream: Upstream, _: Script) -> None:
        assert await post(upstream) == b"all of it"
        assert await post(upstream) == b"all of it"

    assert run(closing, client).connections == 2


def test_an_idle_connection_the_server_closed_is_replaced() -> None:
    async def once(_: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes) -> bool:
        await ok(_, writer, request)
        await writer.drain()
        return False  # like a keep-alive timeout: closed after answering

    async def client(upstream: Upstream, _: Script) -> None:
        assert await post(upstream, b"1") == b"echo:1"
        await asyncio.sleep(0.1)  # the close reaches the pool
        assert await post(upstream, b"2") == b"echo:2"

    assert run(once, client).connections == 2


def test_an_idle_connection_past_its_expiry_is_closed_not_reused() -> None:
    async def client(upstream: Upstream, _: Script) -> None:
        assert isinstance(upstream.transport, PooledTransport)
        assert upstream.transport.keepalive_expiry == 5.0  # httpx's default, kept
        upstream.transport.keepalive_expiry = 0.0  # every idle connection has expired
        assert await post(upstream, b"1") == b"echo:1"
        assert await post(upstream, b"2") == b"echo:2"

    assert run(ok, client).connections == 2


def test_interim_1xx_responses_are_skipped_and_the_connection_stays_in_step() -> None:
    """RFC 9110: a client must parse 1xx responses it did not ask for. Sent apart from the
    answer, a 100 or 103 was taken for the answer, and the next request on the connection got
    the previous one's."""

    async def interim(r: asyncio.StreamReader, w: asyncio.StreamWriter, req: bytes) -> bool:
        w.write(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nlink: </a>\r\n\r\n")
        await w.drain()
        await asyncio.sleep(0.05)  # so the answer arrives in a read of its own
        return await ok(r, w, req)

    async def client(upstream: Upstream, _: Script) -> None:
        for n in range(2):
            request = upstream.build_request("POST", "/v1/messages", "", {}, b"%d" % n)
            response = await upstream.send(request)
            try:
                assert response.status_code == 200 and "link" not in response.headers
                assert await response.aread() == b"echo:%d" % n
            finally:
                await response.aclose()

    assert run(interim, client).connections == 1


def test_a_switch_of_protocols_nobody_asked_for_is_a_protocol_error() -> None:
    async def upgrade(_: asyncio.StreamReader, w: asyncio.StreamWriter, __: bytes) -> bool:
        w.write(b"HTTP/1.1 101 Switching Protocols\r\nupgrade: h2c\r\nconnection: upgrade\r\n\r\n")
        return False

    async def client(upstream: Upstream, _: Script) -> None:
        with pytest.raises(httpx.RemoteProtocolError, match="switched protocols"):
            await post(upstream)

    run(upgrade, client)


def test_silence_is_a_read_timeout_and_a_dead_port_a_connect_error() -> None:
    async def silent(*_: object) -> bool:
        await asyncio.sleep(5)
        return False

    async def client(upstream: Upstream, _: Script) -> None:
        upstream.timeout = httpx.Timeout(0.2, connect=2.0)
        with pytest.raises(httpx.ReadTimeout):
            await post(upstream)
        dead = Upstream("http://127.0.0.1:9", TIMEOUT, PooledTransport())
        with pytest.raises(httpx.ConnectError):
            await post(dead)

    run(silent, client)


def test_a_body_cut_short_is_a_protocol_error_and_the_connection_is_dropped() -> None:
    async def cut(_: asyncio.StreamReader, writer: asyncio.StreamWriter, __: bytes) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly this")
        return False

    async def client(upstream: Upstream, _: Script) -> None:
        with pytest.raises(httpx.RemoteProtocolError):
            await post(upstream)

    run(cut, client)


def test_a_response_left_unread_closes_its_connection() -> None:
    async def slow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, req: bytes) -> bool:
        if not req.startswith(b"POST /base/slow "):
            return await ok(reader, writer, req)
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n")
        await asyncio.sleep(5)  # the rest never comes in time
        return False

    async def client(upstream: Upstream, _: Script) -> None:
        response = await upstream.send(upstream.build_request("POST", "/slow", "", {}, b"{}"))
        await response.aclose()  # the caller went away mid-body
        assert await post(upstream, b"again") == b"echo:again"

    assert run(slow, client).connections == 2


def test_a_whole_response_left_unread_past_the_buffer_limit_does_not_stall_the_next(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Reading pauses once MAX_BUFFERED_BYTES wait unread; a response that arrived whole but
    was never read (its caller went away) left the kept-alive connection paused, and the next
    request on it waited out its read timeout."""
    monkeypatch.setattr(upstream_module, "MAX_BUFFERED_BYTES", 10)

    async def hundred(_: asyncio.StreamReader, w: asyncio.StreamWriter, req: bytes) -> bool:
        w.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n" + b"x" * 100)
        return True

    async def client(upstream: Upstream, _: Script) -> None:
        response = await upstream.send(upstream.build_request("POST", "/big", "", {}, b"{}"))
        conn = response.stream.conn  # type: ignore[attr-defined]
        while not conn.body_done:  # all of it arrived, over the limit, and nobody reads it
            await conn.wait(2.0)
        await response.aclose()
        assert await post(upstream, b"next") == b"x" * 100

    assert run(hundred, client).connections == 1


@pytest.mark.parametrize(
    ("env", "proxy"),
    [
        ({}, None),
        ({"HTTPS_PROXY": "http://proxy:3128"}, "http://proxy:3128"),
        ({"https_proxy": "http://p:1", "NO_PROXY": "api.anthropic.com"}, None),
        ({"ALL_PROXY": "socks5://p:1"}, "socks5://p:1"),
        ({"HTTP_PROXY": "http://p:1"}, None),  # names a proxy for http:// only
    ],
)
def test_the_environment_proxy_for_the_upstream(
    env: dict[str, str], proxy: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert environment_proxy("https://api.anthropic.com") == proxy


def test_the_gateway_goes_through_an_http_proxy_named_by_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def proxy_answers(_: asyncio.StreamReader, w: asyncio.StreamWriter, req: bytes) -> bool:
        assert req.startswith(b"POST http://upstream.invalid/v1/messages?a=1 HTTP/1.1")
        return await ok(_, w, req)

    async def client(upstream: Upstream, script: Script) -> None:
        proxy = str(upstream.base).removesuffix("/base/")
        monkeypatch.setenv("HTTP_PROXY", proxy)
        settings = Settings(upstream_url="http://upstream.invalid")
        async with upstream_client(settings) as through_proxy:
            assert await post(through_proxy, b"via") == b"echo:via"

    assert len(run(proxy_answers, client).requests) == 1

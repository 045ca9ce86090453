"""The upstream HTTP/1.1 client against a real server on loopback that answers as scripted."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from corral.gateway.transport import (
    Target,
    UpstreamClosed,
    UpstreamConnectError,
    UpstreamPool,
)

JSON = b"Content-Type: application/json\r\n"


class ScriptedServer:
    """Answers each request by its path: /ok, /close, /chunked, /cut, /silent."""

    def __init__(self) -> None:
        self.connections = 0
        self.requests: list[bytes] = []
        self._server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        port = self._server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/v1"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    int(line.split(b":")[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                body = await reader.readexactly(length)
                self.requests.append(head + body)
                path = head.split(b" ")[1]
                if not await self._answer(path, body, writer):
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def _answer(self, path: bytes, body: bytes, writer: asyncio.StreamWriter) -> bool:
        if path.endswith(b"/ok"):
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        elif path.endswith(b"/idle-close"):  # keep-alive promised, closed soon after (a timeout)
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            await writer.drain()
            await asyncio.sleep(0.05)
            return False
        elif path.endswith(b"/close"):
            writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok")
            await writer.drain()
            return False
        elif path.endswith(b"/chunked"):
            writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            for piece in (b"data: 1\n\n", b"data: 2\n\n", b"data: [DONE]\n\n"):
                writer.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                await writer.drain()
                await asyncio.sleep(0.01)
            writer.write(b"0\r\n\r\n")
        elif path.endswith(b"/until-close"):  # no length, no chunks: the body ends at close
            writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nall of it")
            await writer.drain()
            return False
        elif path.endswith(b"/cut"):
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial")
            await writer.drain()
            return False
        elif path.endswith(b"/silent"):
            await asyncio.sleep(5)
        await writer.drain()
        return True

    @asynccontextmanager
    async def running(self) -> AsyncIterator[ScriptedServer]:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        try:
            yield self
        finally:
            self._server.close()
            await self._server.wait_closed()


async def _post(pool: UpstreamPool, url: str, path: bytes, body: bytes = b"{}") -> bytes:
    response = await pool.post(
        Target.parse(url), path, JSON, body, connect_timeout=2, read_timeout=2
    )
    try:
        return await response.read()
    finally:
        response.close()


async def test_sequential_calls_share_one_kept_alive_connection() -> None:
    pool = UpstreamPool()
    async with ScriptedServer().running() as server:
        answers = [await _post(pool, server.url, b"/ok", b'{"n": %d}' % i) for i in range(5)]
        await pool.close()
    assert answers == [b'{"n": %d}' % i for i in range(5)]
    assert server.connections == 1
    first = server.requests[0]
    assert first.startswith(b"POST /v1/ok HTTP/1.1\r\nHost: 127.0.0.1:")
    assert b"\r\nContent-Length: 8\r\nContent-Type: application/json\r\n\r\n" in first


async def test_an_answer_with_connection_close_is_not_reused() -> None:
    pool = UpstreamPool()
    async with ScriptedServer().running() as server:
        assert await _post(pool, server.url, b"/close") == b"ok"
        assert await _post(pool, server.url, b"/ok") == b"{}"
        await pool.close()
    assert server.connections == 2


async def test_a_chunked_stream_arrives_piece_by_piece_and_whole() -> None:
    pool = UpstreamPool()
    async with ScriptedServer().running() as server:
        response = await pool.post(
            Target.parse(server.url), b"/chunked", JSON, b"{}", connect_timeout=2, read_timeout=2
        )
        pieces = [piece async for piece in response.chunks()]
        response.close()
        assert await _post(pool, server.url, b"/ok") == b"{}"  # the connection was reused
        await pool.close()
    assert b"".join(pieces) == b"data: 1\n\ndata: 2\n\ndata: [DONE]\n\n"
    assert len(pieces) == 3
    assert server.connections == 1


async def test_a_body_delimited_by_the_close_is_read_to_the_end() -> None:
    pool = UpstreamPool()
    async with ScriptedServer().running() as server:
        assert await _post(pool, server.url, b"/until-close") == b"all of it"
        await pool.close()


async def test_an_engine_hanging_up_mid_answer_raises_upstream_closed() -> None:
    pool = UpstreamPool()
    async with ScriptedServer().running() as server:
        with pytest.raises(UpstreamClosed):
            await _post(pool, server.url, b"/cut")
        assert await _post(pool, server.url, b"/ok") == b"{}"  # a fresh connection
        await pool.close()
    assert server.connections == 2


async def test_silence_past_the_read_timeout_raises_timeout() -> None:
    pool = UpstreamPool()
    async with ScriptedServer().running() as server:
        started = asyncio.get_running_loop().time()
        with pytest.raises(TimeoutError):
            await pool.post(
                Target.parse(server.url),
                b"/silent",
                JSON,
                b"{}",
                connect_timeout=2,
                read_timeout=0.2,
            )
        assert asyncio.get_running_loop().time() - started < 1.5
        await pool.close()


async def test_a_refused_connection_raises_connect_error() -> None:
    pool = UpstreamPool()
    async with ScriptedServer().running() as server:
        url = server.url
    with pytest.raises(UpstreamConnectError):
        await _post(pool, url, b"/ok")
    await pool.close()


async def test_an_idle_connection_the_engine_closed_is_replaced() -> None:
    pool = UpstreamPool()
    async with ScriptedServer().running() as server:
        assert await _post(pool, server.url, b"/idle-close") == b"ok"
        await asyncio.sleep(0.3)  # the engine's keep-alive timeout passes
        assert not any(pool._idle.values())  # the closed connection left the pool at once
        assert await _post(pool, server.url, b"/ok") == b"{}"
        await pool.close()
    assert server.connections == 2


def test_targets_parse_host_headers_and_default_ports() -> None:
    assert Target.parse("http://engine:8000/v1").host_header == b"engine:8000"
    assert Target.parse("https://api.example.com/v1").port == 443
    assert Target.parse("https://api.example.com/v1").host_header == b"api.example.com"
    assert Target.parse("http://[::1]:9000/v1/").host_header == b"[::1]:9000"
    assert Target.parse("http://[::1]:9000/v1/").path == b"/v1"
    with pytest.raises(ValueError, match="not an http"):
        Target.parse("ftp://engine/v1")

"""The gateway's upstream HTTP/1.1 client: keep-alive connections to engines, parsed by httptools.

Every relayed call crosses this path, so it does only what an engine call needs: one POST with
a body in memory, the answer's status, headers and body pieces as they arrive, connections
reused per host, and deadlines. On the development machine it took about 85 µs of CPU off each
relayed call compared with aiohttp's general client (which still serves probes). Protocol work
(framing, chunked decoding, keep-alive rules) is httptools', the parser uvicorn uses.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import cast
from urllib.parse import urlsplit

import httptools

_HIGH_WATER = 1 << 20
"""Body bytes buffered before the connection stops reading (a client slower than the engine)."""


class UpstreamConnectError(OSError):
    """No connection to the engine could be opened."""


class UpstreamClosed(ConnectionError):
    """The engine closed the connection or sent a malformed answer before it was complete."""


@dataclass(frozen=True, slots=True)
class Target:
    """Where one endpoint's calls go: parsed once, reused for every call."""

    scheme: str
    host: str
    port: int
    path: bytes
    """The path prefix (``/v1``); a call appends ``/chat/completions`` and the like."""
    host_header: bytes

    @classmethod
    def parse(cls, base_url: str) -> Target:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {base_url!r}")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        default = (parts.scheme == "https" and port == 443) or (
            parts.scheme == "http" and port == 80
        )
        host = parts.hostname if default else f"{parts.hostname}:{port}"
        if ":" in parts.hostname and not default:  # IPv6 literal
            host = f"[{parts.hostname}]:{port}"
        return cls(
            parts.scheme,
            parts.hostname,
            port,
            parts.path.rstrip("/").encode(),
            host.encode("idna"),
        )


class UpstreamResponse:
    """An engine's answer: status and headers at once, the body as it comes."""

    __slots__ = ("_conn", "headers", "status")

    def __init__(self, conn: _Connection) -> None:
        self._conn = conn
        self.status = conn.status
        self.headers = conn.headers

    def header(self, name: bytes) -> bytes | None:
        """The first value of header ``name`` (lower-case), or None."""
        for key, value in self.headers:
            if key == name:
                return value
        return None

    async def read(self) -> bytes:
        """The whole body."""
        parts = [chunk async for chunk in self.chunks()]
        return parts[0] if len(parts) == 1 else b"".join(parts)

    async def chunks(self) -> AsyncIterator[bytes]:
        """Body pieces in arrival order; UpstreamClosed if the engine stops mid-answer, and
        TimeoutError if it stays silent past the read timeout.

        Each piece is everything that arrived since the last one: HTTP chunks the engine sent
        as separate writes (an SSE event each, for vLLM) but that were read together come out
        as one piece, so the relay scans and sends them once instead of once per event.
        """
        conn = self._conn
        while True:
            if conn.body:
                yield conn.take()
                continue
            if conn.complete:
                return
            await conn.wait()

    def set_read_timeout(self, seconds: float) -> None:
        """From now on, TimeoutError after ``seconds`` without a byte (a stream's idle limit
        once its first byte came, checked lazily rather than re-armed on every chunk)."""
        self._conn.set_read_timeout(seconds)

    def close(self) -> None:
        """Done with the answer: the connection goes back to the pool when it was read to the
        end and the engine keeps it alive, and is closed otherwise."""
        self._conn.finish()


class _Connection(asyncio.Protocol):
    """One keep-alive connection and the answer being read on it."""

    def __init__(self, pool: UpstreamPool, key: tuple[str, str, int]) -> None:
        self._pool = pool
        self._key = key
        self._loop = asyncio.get_running_loop()
        self._transport: asyncio.Transport | None = None
        self._parser = httptools.HttpResponseParser(self)
        self._waiter: asyncio.Future[None] | None = None
        self._error: BaseException | None = None
        self._read_timeout = 0.0
        self._last_read = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self.closed = False
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.headers_done = False
        self._until_close = False
        self.keep_alive = False
        self.body: deque[bytes] = deque()
        self.buffered = 0
        self.paused = False
        self.complete = False

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        self._last_read = self._loop.time()
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(UpstreamClosed(f"malformed answer from the engine ({exc})"))
            self.abort()

    def eof_received(self) -> bool | None:
        return None  # close the connection

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._cancel_timer()
        if self.headers_done and self._until_close and exc is None:
            self.complete = True  # a body without length or chunks ends when the engine closes
            self._wake()
        elif not self.complete:
            self._fail(UpstreamClosed("the engine closed the connection"))
        self._pool.forget(self._key, self)

    # httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        self.status = self._parser.get_status_code()
        self.keep_alive = self._parser.should_keep_alive()  # only known until the message ends
        framed = {name for name, _ in self.headers} & {b"content-length", b"transfer-encoding"}
        self._until_close = not framed and self.status not in (204, 304)
        self.headers_done = True
        self._wake()

    def on_body(self, body: bytes) -> None:
        self.body.append(body)
        self.buffered += len(body)
        if self.buffered > _HIGH_WATER and not self.paused and self._transport is not None:
            self.paused = True
            self._transport.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        self.complete = True
        self._cancel_timer()
        self._wake()

    # the call
    def send(self, request: bytes, read_timeout: float) -> None:
        assert self._transport is not None
        self._parser = httptools.HttpResponseParser(self)
        self.status, self.headers, self.headers_done, self.keep_alive = 0, [], False, False
        self.body.clear()
        self.buffered, self.complete, self._error = 0, False, None
        self._read_timeout = read_timeout
        self._last_read = self._loop.time()
        self._timer = self._loop.call_at(self._last_read + read_timeout, self._check_silence)
        self._transport.write(request)

    def take(self) -> bytes:
        """Every body piece buffered so far, as one."""
        body = self.body
        if len(body) == 1:
            chunk = body.popleft()
        else:
            chunk = b"".join(body)
            body.clear()
        self.buffered = 0
        if self.paused:
            self.resume()
        return chunk

    def set_read_timeout(self, seconds: float) -> None:
        if seconds == self._read_timeout:
            return
        self._read_timeout = seconds
        if self._timer is not None:
            self._timer.cancel()
            self._timer = self._loop.call_at(self._last_read + seconds, self._check_silence)

    async def wait(self) -> None:
        """Until the parser has more to give (headers, body, the end) or the call failed."""
        if self._error is not None:
            raise self._error
        self._waiter = self._loop.create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None

    def resume(self) -> None:
        self.paused = False
        if self._transport is not None and not self.closed:
            self._transport.resume_reading()

    def finish(self) -> None:
        self._cancel_timer()
        if self.complete and not self.closed and self.keep_alive:
            self._pool.release(self._key, self)
        else:
            self.abort()

    def abort(self) -> None:
        """Close at once (a connection that cannot be reused)."""
        self._cancel_timer()
        self.closed = True
        if self._transport is not None:
            self._transport.abort()

    def _check_silence(self) -> None:
        self._timer = None
        if self.complete or self.closed:
            return
        due = self._last_read + self._read_timeout
        if self._loop.time() >= due:
            self._fail(TimeoutError(f"the engine sent nothing for {self._read_timeout:g} s"))
            self.abort()
        else:
            self._timer = self._loop.call_at(due, self._check_silence)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _fail(self, error: BaseException) -> None:
        if self._error is None:
            self._error = error
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


class UpstreamPool:
    """Keep-alive connections per engine host, opened on demand and never limited in number
    (the fair queue bounds calls per endpoint)."""

    def __init__(self, *, max_idle_per_host: int = 256) -> None:
        self._idle: dict[tuple[str, str, int], deque[_Connection]] = {}
        self._max_idle = max_idle_per_host
        self._tls: ssl.SSLContext | None = None
        self._closed = False

    async def post(
        self,
        target: Target,
        path: bytes,
        headers: bytes,
        body: bytes,
        *,
        connect_timeout: float,
        read_timeout: float,
    ) -> UpstreamResponse:
        """POST ``body`` to ``target`` + ``path`` with ``headers`` (CRLF-terminated lines) and
        wait for the answer's headers. UpstreamConnectError when no connection opens,
        TimeoutError past ``read_timeout`` of silence, UpstreamClosed when the engine hangs up."""
        conn = await self._connection(target, connect_timeout)
        request = b"".join(
            (
                b"POST ",
                target.path,
                path,
                b" HTTP/1.1\r\nHost: ",
                target.host_header,
                b"\r\nContent-Length: ",
                str(len(body)).encode(),
                b"\r\n",
                headers,
                b"\r\n",
                body,
            )
        )
        conn.send(request, read_timeout)
        try:
            while not conn.headers_done:
                await conn.wait()
        except BaseException:
            conn.finish()
            raise
        return UpstreamResponse(conn)

    def release(self, key: tuple[str, str, int], conn: _Connection) -> None:
        idle = self._idle.setdefault(key, deque())
        if self._closed or len(idle) >= self._max_idle:
            conn.abort()
            return
        idle.append(conn)

    def forget(self, key: tuple[str, str, int], conn: _Connection) -> None:
        """Drop a connection the engine closed while it sat idle."""
        idle = self._idle.get(key)
        if idle is not None and conn in idle:
            idle.remove(conn)

    async def close(self) -> None:
        """Close every idle connection; calls in flight finish on theirs."""
        self._closed = True
        for idle in self._idle.values():
            while idle:
                idle.pop().abort()
        self._idle.clear()
        await asyncio.sleep(0)  # let the closes reach the engines before the loop moves on

    async def _connection(self, target: Target, connect_s: float) -> _Connection:
        key = (target.scheme, target.host, target.port)
        idle = self._idle.get(key)
        while idle:
            conn = idle.pop()  # the most recently used: least likely to have been closed
            if not conn.closed:
                return conn
        loop = asyncio.get_running_loop()
        tls = self._tls_context() if target.scheme == "https" else None
        try:
            async with asyncio.timeout(connect_s):
                _, protocol = await loop.create_connection(
                    lambda: _Connection(self, key),
                    target.host,
                    target.port,
                    ssl=tls,
                    server_hostname=target.host if tls is not None else None,
                )
        except (OSError, TimeoutError) as exc:
            raise UpstreamConnectError(
                f"could not connect to {target.host}:{target.port} ({type(exc).__name__})"
            ) from exc
        return protocol

    def _tls_context(self) -> ssl.SSLContext:
        if self._tls is None:
            self._tls = ssl.create_default_context()
        return self._tls

"""A TCP proxy on loopback that a test can cut, stall and restore, to make a real server
unreachable (refused) or silent (a network that drops packets: nothing answers, nothing fails),
or slow down, to load it with latency."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Coroutine
from typing import Any


class CuttableProxy:
    """Forwards 127.0.0.1:<port> to a target; ``cut()`` drops every connection and refuses new
    ones until ``restore()``; ``stall()`` keeps every connection open but holds what is sent,
    and accepts new ones without ever answering, until ``restore()``: then what was held is
    delivered (as TCP retransmits once a link heals, so a command a client gave up on still
    runs) and the connections made during the stall are dropped. ``latency``: seconds each
    chunk waits, each way."""

    def __init__(self, target_host: str, target_port: int, *, latency: float = 0.0) -> None:
        self._target = (target_host, target_port)
        self.latency = latency
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self._stalled = asyncio.Event()
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._held: set[asyncio.StreamWriter] = set()
        self.port = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def cut(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for writer in list(self._writers):
            writer.transport.abort()
        for task in list(self._pipes):
            task.cancel()

    async def stall(self) -> None:
        self._stalled.set()
        self._flowing.clear()

    async def restore(self) -> None:
        self._stalled.clear()
        self._flowing.set()
        for writer in list(self._held):
            writer.transport.abort()
        self._held.clear()
        if self._server is None:
            await self.start()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._stalled.is_set():
            self._held.add(writer)  # held open, never answered; dropped by restore()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self._target)
        except OSError:
            writer.transport.abort()
            return
        self._writers |= {writer, up_writer}
        pipes = [
            asyncio.ensure_future(self._pipe(reader, up_writer)),
            asyncio.ensure_future(self._pipe(up_reader, writer)),
        ]
        self._pipes.update(pipes)
        # Either side closing closes both, as a dropped TCP connection would.
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait(pipes, return_when=asyncio.FIRST_COMPLETED)
        for pipe in pipes:
            pipe.cancel()
        self._pipes.difference_update(pipes)
        for w in (writer, up_writer):
            self._writers.discard(w)
            w.transport.abort()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            while data := await reader.read(65536):
                await self._flowing.wait()  # held while stalled, delivered after
                if self.latency:
                    await asyncio.sleep(self.latency)
                writer.write(data)
                await writer.drain()


class ProxyThread:
    """A CuttableProxy on its own event loop in a thread, for tests whose server is another
    process: ``call(proxy.stall())`` runs a proxy coroutine there and waits for it."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self.proxy = CuttableProxy(target_host, target_port)

    def __enter__(self) -> ProxyThread:
        self._thread.start()
        self.call(self.proxy.start())
        return self

    def __exit__(self, *exc: object) -> None:
        self.call(self.proxy.cut())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()

    def call(self, coroutine: Coroutine[Any, Any, None]) -> None:
        asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(10)

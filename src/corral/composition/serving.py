"""Serves a platform with uvicorn (uvloop + httptools), in the foreground or in a thread."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Callable, Coroutine
from contextlib import AbstractAsyncContextManager
from typing import Any, TypeVar

import uvicorn
import uvloop

from corral.composition.platform import Platform

T = TypeVar("T")
PlatformFactory = Callable[[], AbstractAsyncContextManager[Platform]]


def uvicorn_config(app: Any, host: str, port: int = 0) -> uvicorn.Config:
    """Corral's uvicorn settings: httptools parser, no uvicorn access log (Corral logs its own)."""
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        http="httptools",
        loop="none",
        lifespan="off",
        access_log=False,
        log_config=None,
        timeout_graceful_shutdown=30,
    )


class _AnnouncingServer(uvicorn.Server):
    """A uvicorn server that says when it listens."""

    def __init__(self, config: uvicorn.Config, on_listening: Callable[[], None]) -> None:
        super().__init__(config)
        self._on_listening = on_listening

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if not self.should_exit:
            self._on_listening()


async def serve(
    factory: PlatformFactory, host: str, port: int, on_ready: Callable[[Platform], None]
) -> None:
    """Start the platform, serve it until SIGINT/SIGTERM, then stop it."""
    async with factory() as platform:
        server = _AnnouncingServer(
            uvicorn_config(platform.app, host, port), lambda: on_ready(platform)
        )
        try:
            await server.serve()
        finally:
            platform.ready = False
        if not server.started:
            raise OSError(f"could not listen on {host}:{port}; is another process using it?")


class ServerThread:
    """A platform served on a loopback port in a background thread (for tests and benchmarks)."""

    def __init__(self, factory: PlatformFactory, host: str = "127.0.0.1") -> None:
        self._factory = factory
        self._host = host
        self._started = threading.Event()
        self._error: BaseException | None = None
        self._server: uvicorn.Server | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.platform: Platform | None = None
        self.port = 0
        self._thread = threading.Thread(target=self._run, name="corral-server", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self._host}:{self.port}"

    def __enter__(self) -> ServerThread:
        self._thread.start()
        if not self._started.wait(60):
            raise TimeoutError("the Corral server did not start within 60 s")
        if self._error is not None:
            raise self._error
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None and self._loop is not None:
            self._loop.call_soon_threadsafe(setattr, self._server, "should_exit", True)
        self._thread.join(30)

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run ``coroutine`` on the server's event loop and wait for its result."""
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(60)

    def _run(self) -> None:
        try:
            uvloop.run(self._main())
        except BaseException as exc:  # reported to the thread that waits in __enter__
            self._error = exc
            self._started.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        sock = socket.socket()
        sock.bind((self._host, 0))
        self.port = sock.getsockname()[1]
        async with self._factory() as platform:
            self.platform = platform
            config = uvicorn_config(platform.app, self._host, self.port)
            self._server = _AnnouncingServer(config, self._started.set)
            with sock:
                await self._server.serve(sockets=[sock])

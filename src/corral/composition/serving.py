"""Serves a platform with uvicorn (uvloop + httptools), in the foreground or in a thread."""

from __future__ import annotations

import asyncio
import gc
import logging
import socket
import threading
from collections.abc import Callable, Coroutine
from contextlib import AbstractAsyncContextManager
from types import FrameType
from typing import Any, TypeVar

import uvicorn
import uvloop

from corral.composition.platform import Platform

logger = logging.getLogger("corral.serving")
CUT_MARGIN_S = 2
"""Seconds between the gateway cutting open requests and uvicorn cancelling what is left."""
T = TypeVar("T")
PlatformFactory = Callable[[], AbstractAsyncContextManager[Platform]]


def uvicorn_config(app: Any, host: str, port: int = 0, drain_timeout: float = 30) -> uvicorn.Config:
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
        # The gateway cuts what is still open at drain_timeout itself (an error event, a
        # record); uvicorn's own cancel, a little later, is only the backstop.
        timeout_graceful_shutdown=int(drain_timeout) + CUT_MARGIN_S,
    )


def freeze_startup_heap() -> None:
    """Move everything start-up allocated (modules, settings, engines) out of the collector's
    reach: full collections then scan only what requests allocate, instead of pausing the
    event loop for tens of milliseconds under load (``gc.freeze``, as CPython's docs advise for
    servers)."""
    gc.collect()
    gc.freeze()


class _AnnouncingServer(uvicorn.Server):
    """A uvicorn server that says when it listens, and drains gracefully on SIGTERM/SIGINT.

    The first signal starts a drain: ``on_drain`` runs at once (readiness turns 503 so load
    balancers stop sending), requests are still served for ``drain_grace`` seconds, then the
    server stops accepting and waits up to ``timeout_graceful_shutdown`` for open requests and
    streams. A second signal stops at once. The process then exits 0: the signal is handled,
    not re-raised.
    """

    def __init__(
        self,
        config: uvicorn.Config,
        on_listening: Callable[[], None],
        on_drain: Callable[[], None] = lambda: None,
        drain_grace: float = 0.0,
        *,
        on_cut: Callable[[], None] = lambda: None,
        drain_timeout: float = 30.0,
    ) -> None:
        super().__init__(config)
        self._on_listening = on_listening
        self._on_drain = on_drain
        self._drain_grace = drain_grace
        self._on_cut = on_cut
        self._drain_timeout = drain_timeout
        self._draining = False
        self._loop: asyncio.AbstractEventLoop | None = None

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        await super().startup(sockets)
        if not self.should_exit:
            self._on_listening()

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self.should_exit:
            self.force_exit = True
        elif self._draining or self._loop is None:
            self.should_exit = True
        else:
            self._draining = True
            self._loop.call_soon_threadsafe(self._start_drain)

    def _start_drain(self) -> None:
        assert self._loop is not None
        logger.info("draining: not ready; refusing new connections in %.1f s", self._drain_grace)
        self._on_drain()
        self._loop.call_later(self._drain_grace, setattr, self, "should_exit", True)
        self._loop.call_later(self._drain_grace + self._drain_timeout, self._on_cut)


async def serve(
    factory: PlatformFactory,
    host: str,
    port: int,
    on_ready: Callable[[Platform], None],
    *,
    drain_grace: float = 5.0,
    drain_timeout: float = 30.0,
    sockets: list[socket.socket] | None = None,
) -> None:
    """Start the platform, serve it until SIGINT/SIGTERM, then stop it. ``sockets``: already
    listening ones to serve on (a worker's shared port) instead of binding ``host:port``."""
    async with factory() as platform:

        def listening() -> None:
            freeze_startup_heap()  # a server process: start-up is over for good
            on_ready(platform)

        server = _AnnouncingServer(
            uvicorn_config(platform.app, host, port, drain_timeout),
            listening,
            on_drain=lambda: setattr(platform, "ready", False),
            drain_grace=drain_grace,
            on_cut=lambda: _cut(platform),
            drain_timeout=drain_timeout,
        )
        try:
            await server.serve(sockets=sockets)
        finally:
            platform.ready = False
        if not server.started:
            raise OSError(f"could not listen on {host}:{port}; is another process using it?")


def _cut(platform: Platform) -> None:
    cut = platform.gateway.cut_open_requests()
    if cut:
        logger.warning("drain timeout: ended %d open requests with an error", cut)


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

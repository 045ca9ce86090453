"""Serves a platform with uvicorn (uvloop + httptools), in the foreground or in a thread."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import resource
import socket
import threading
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from contextlib import AbstractAsyncContextManager
from types import FrameType
from typing import Any, TypeVar

import uvicorn
import uvloop

from corral.composition.connection_guard import guarded_protocol
from corral.composition.platform import Platform
from corral.composition.workers import listening_socket
from corral.settings import ConnectionLimits

logger = logging.getLogger("corral.serving")
CUT_MARGIN_S = 2
"""Seconds between the gateway cutting open requests and uvicorn cancelling what is left."""
T = TypeVar("T")
_SPARE_FILES = 256
"""Descriptors kept for what is not a client connection: engines, upstreams, store, spool."""
PlatformFactory = Callable[[], AbstractAsyncContextManager[Platform]]


def uvicorn_config(
    app: Any,
    host: str,
    port: int = 0,
    drain_timeout: float = 30,
    limits: ConnectionLimits | None = None,
) -> uvicorn.Config:
    """Corral's uvicorn settings: httptools parser guarded by ``limits``, no uvicorn access log
    (Corral logs its own)."""
    limits = limits or ConnectionLimits()
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        http=guarded_protocol(limits),
        timeout_keep_alive=limits.keep_alive_timeout,
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


def allow_open_files(connections: int) -> None:
    """Raise the soft open-file limit to the hard one, so ``connections`` sockets fit beside the
    files, engines and upstream connections; warn when they still may not."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and (hard == resource.RLIM_INFINITY or hard > soft):
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
    if soft != resource.RLIM_INFINITY and soft < connections + _SPARE_FILES:
        logger.warning(
            "the open-file limit (%d) is below server.limits.max_connections (%d) plus %d for "
            "everything else: raise it (ulimit -n) or lower max_connections",
            soft,
            connections,
            _SPARE_FILES,
        )


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


class _MetricsServer(uvicorn.Server):
    """The /metrics listener: runs beside the main server, which alone handles signals."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@contextlib.asynccontextmanager
async def metrics_listener(app: Any, sock: socket.socket | None) -> AsyncIterator[None]:
    """Serve ``app`` (/metrics) on ``sock`` while the block runs; nothing when ``sock`` is None."""
    if sock is None:
        yield
        return
    server = _MetricsServer(uvicorn_config(app, "", limits=ConnectionLimits()))
    task = asyncio.get_running_loop().create_task(server.serve(sockets=[sock]))
    try:
        yield
    finally:
        server.should_exit = True
        await task
        sock.close()


def metrics_socket(host: str, port: int | None, *, shared: bool = False) -> socket.socket | None:
    """A listening socket for /metrics on ``host:port`` (None when ``port`` is unset);
    ``shared``: SO_REUSEPORT, for gateway workers that each answer scrapes."""
    if port is None:
        return None
    return listening_socket(host, port, shared=shared, setting="server.metrics_port")


async def serve(
    factory: PlatformFactory,
    host: str,
    port: int,
    on_ready: Callable[[Platform], None],
    *,
    drain_grace: float = 5.0,
    drain_timeout: float = 30.0,
    sockets: list[socket.socket] | None = None,
    metrics_sock: socket.socket | None = None,
) -> None:
    """Start the platform, serve it until SIGINT/SIGTERM, then stop it. ``sockets``: already
    listening ones to serve on (a worker's shared port) instead of binding ``host:port``;
    ``metrics_sock``: where /metrics is served (none without it)."""
    async with factory() as platform, metrics_listener(platform.metrics_app, metrics_sock):

        def listening() -> None:
            freeze_startup_heap()  # a server process: start-up is over for good
            on_ready(platform)

        limits = platform.settings.server.limits
        allow_open_files(limits.max_connections)
        server = _AnnouncingServer(
            uvicorn_config(platform.app, host, port, drain_timeout, limits),
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

    def __init__(
        self,
        factory: PlatformFactory,
        host: str = "127.0.0.1",
        limits: ConnectionLimits | None = None,
    ) -> None:
        self._factory = factory
        self._limits = limits
        self._host = host
        self._started = threading.Event()
        self._error: BaseException | None = None
        self._server: uvicorn.Server | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.platform: Platform | None = None
        self.port = 0
        self.metrics_port = 0
        self._thread = threading.Thread(target=self._run, name="corral-server", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self._host}:{self.port}"

    @property
    def metrics_url(self) -> str:
        """The /metrics page, on its own loopback listener."""
        return f"http://{self._host}:{self.metrics_port}/metrics"

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
        metrics = metrics_socket(self._host, 0)
        assert metrics is not None
        self.metrics_port = metrics.getsockname()[1]
        with sock, metrics:
            async with (
                self._factory() as platform,
                metrics_listener(platform.metrics_app, metrics),
            ):
                self.platform = platform
                limits = self._limits or platform.settings.server.limits
                config = uvicorn_config(platform.app, self._host, self.port, limits=limits)
                self._server = _AnnouncingServer(config, self._started.set)
                await self._server.serve(sockets=[sock])

"""A real admin API on loopback: uvicorn in a thread, a SqlStore, KeySync and the bootstrap key."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from dataclasses import dataclass, field

import uvicorn
from starlette.applications import Starlette
from starlette.routing import Mount

from corral.admin.app import build_admin_app
from corral.clock import SystemClock
from corral.principals import KeyDirectory
from corral.store.bootstrap import bootstrap_admin_key
from corral.store.keysync import KeySync
from corral.store.secret import check_server_secret
from corral.store.sql import SqlStore

SECRET = "integration-secret-integration-secret-0123456789"


@dataclass
class AdminServer:
    """One running admin API; ``bootstrap_key`` is None when the store was bootstrapped before."""

    db_url: str
    secret: bytes = SECRET.encode()
    url: str = ""
    bootstrap_key: str | None = None
    _server: uvicorn.Server | None = None
    _thread: threading.Thread | None = None
    _failure: list[BaseException] = field(default_factory=list)

    def start(self) -> AdminServer:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        self._thread = threading.Thread(target=self._run, args=(sock,), daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 15
        while not (self._server and self._server.started):
            if self._failure:
                raise RuntimeError("the admin server failed to start") from self._failure[0]
            if time.monotonic() > deadline:
                raise TimeoutError("the admin server did not start within 15 s")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _run(self, sock: socket.socket) -> None:
        try:
            asyncio.run(self._serve(sock))
        except BaseException as exc:  # reported to the test by start()
            self._failure.append(exc)

    async def _serve(self, sock: socket.socket) -> None:
        store, clock = SqlStore(self.db_url), SystemClock()
        sync = KeySync(store, KeyDirectory(self.secret), clock)
        try:
            await check_server_secret(store, self.secret)
            boot = await bootstrap_admin_key(store, self.secret, clock.now())
            self.bootstrap_key = None if boot is None else boot.secret
            await sync.start()
            admin = build_admin_app(store=store, keys=sync, clock=clock)
            app = Starlette(routes=[Mount("/admin/v1", app=admin)])
            config = uvicorn.Config(
                app, lifespan="off", log_config=None, loop="asyncio", access_log=True
            )
            self._server = uvicorn.Server(config)
            await self._server.serve(sockets=[sock])
        finally:
            sock.close()
            await sync.stop()
            await store.close()

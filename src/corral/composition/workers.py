"""`corral up` with ``server.workers > 1``: gateway processes that share one port.

Each worker is a whole gateway (its own event loop, connection pools, ledger writer and spool)
listening on the same address with SO_REUSEPORT, so the kernel spreads connections over them.
What must be one for all of them is shared outside: limits and budgets in Redis, keys and usage
in the database. The parent prepares the store once, starts the workers, forwards SIGTERM or
Ctrl-C to them (they drain as a single process does), and restarts a worker that dies, after a
growing delay; only workers that crash-loop (``CRASH_LOOP_DEATHS`` deaths in a row, each
within ``EARLY_DEATH_S`` of its start) stop them all. A restarted worker adopts the dead one's
usage journal and settles the reservations it held (see ``corral.gateway.ledger``).
"""

from __future__ import annotations

import errno
import logging
import multiprocessing
import os
import signal
import socket
import time
import urllib.request
from collections.abc import Callable, Sequence
from multiprocessing.connection import wait
from multiprocessing.process import BaseProcess
from types import FrameType

from rich.console import Console

from corral.errors import ConfigError
from corral.settings import CorralSettings

READY_TIMEOUT_S = 120.0
CRASH_LOOP_DEATHS = 5
"""Early deaths in a row that make a crash loop: the parent then stops every worker."""
EARLY_DEATH_S = 5.0
"""A worker that dies sooner than this after it started counts as failing to start."""
RESTART_DELAY_S = (0.5, 30.0)
"""The first restart's delay, doubling with each early death in a row, up to the second."""


def restart_delay(early_deaths: int) -> float | None:
    """Seconds to wait before restarting a worker, after ``early_deaths`` deaths in a row of
    workers that had just started (0 when the last one had been running); None: a crash loop."""
    if early_deaths >= CRASH_LOOP_DEATHS:
        return None
    return min(RESTART_DELAY_S[1], RESTART_DELAY_S[0] * float(2**early_deaths))


log = logging.getLogger("corral.workers")


def listening_socket(
    host: str,
    port: int,
    *,
    listen: bool = True,
    shared: bool = True,
    setting: str = "server.port",
    fix: str | None = None,
) -> socket.socket:
    """A TCP socket on ``host:port`` that other processes may bind as well (SO_REUSEPORT)
    unless ``shared`` is false; a ConfigError naming ``setting`` (and ``fix``, the way out of
    a busy port) when it cannot be had."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT is no conflict
    if shared:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise ConfigError(
                f"{setting}: port {port} on {host} is already in use by another process "
                f"(another Corral?). Stop it, or {fix or f'choose a free port for {setting}'}"
            ) from exc
        raise ConfigError(f"{setting}: cannot listen on {host}:{port} ({exc.strerror})") from exc
    if listen:
        sock.listen(2048)
    sock.set_inheritable(False)
    return sock


def run_workers(
    settings: CorralSettings,
    console: Console,
    prepare: Callable[[CorralSettings], str | None],
    welcome: Callable[[CorralSettings, str | None], None],
    serve_worker: Callable[[CorralSettings, int], None],
) -> None:
    """Prepare the store (``prepare`` returns a first-run admin key), start the workers, print
    ``welcome`` once they answer, and supervise them until a signal or a worker's death."""
    server = settings.server
    # Held, not listening, for the workers' lifetime: resolves port 0 and keeps the port ours.
    # Taken before the store is prepared: a busy port must not cost the first admin key.
    reservation = listening_socket(server.host, server.port, listen=False)
    try:
        key = prepare(settings)
    except BaseException:
        reservation.close()
        raise
    port = reservation.getsockname()[1]
    settings = settings.model_copy(update={"server": server.model_copy(update={"port": port})})
    context = multiprocessing.get_context("spawn")  # no fork: the parent may hold threads

    def new_worker(index: int) -> BaseProcess:
        worker = context.Process(
            target=_worker, args=(serve_worker, settings, index), name=f"corral-worker-{index}"
        )
        worker.start()
        return worker

    workers: list[BaseProcess] = []
    stopping: list[int] = []

    def forward(signum: int, frame: FrameType | None) -> None:
        del frame
        stopping.append(signum)
        for worker in workers:
            if worker.pid is not None and worker.exitcode is None:
                os.kill(worker.pid, signal.SIGTERM)  # a second signal stops them at once

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        workers += [new_worker(index) for index in range(server.workers)]
        if _until_ready(settings, workers):
            welcome(settings, key)
        failed = _supervise(workers, stopping, new_worker)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for worker in workers:
            worker.join(server.drain_grace + server.drain_timeout + 10)
            if worker.exitcode is None:
                worker.kill()
        reservation.close()
    if failed is not None:
        raise ConfigError(
            f"gateway worker {failed.name} stopped unexpectedly (exit code {failed.exitcode}), "
            f"the {CRASH_LOOP_DEATHS}th in a row within {EARLY_DEATH_S:g} s of its start; "
            "their log lines above say why. Stopped the others."
        )


def _worker(
    serve_worker: Callable[[CorralSettings, int], None], settings: CorralSettings, index: int
) -> None:
    os.setpgrp()  # Ctrl-C reaches the parent only; it forwards one SIGTERM, so one drain
    serve_worker(settings, index)


def _until_ready(settings: CorralSettings, workers: Sequence[BaseProcess]) -> bool:
    """Whether the port answered /readyz before any worker died or the time ran out."""
    host = settings.server.host
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host  # noqa: S104  (where to ask)
    url = f"http://{shown}:{settings.server.port}/readyz"
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if any(w.exitcode is not None for w in workers):
            return False
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return True
        except OSError:
            pass
        time.sleep(0.2)
    return False


def _supervise(
    workers: list[BaseProcess], stopping: list[int], restart: Callable[[int], BaseProcess]
) -> BaseProcess | None:
    """Restart workers that die on their own (``workers`` is kept current) until a signal, or
    until they crash-loop; then wait for all to exit. The worker that died last, if they
    crash-looped."""
    started = dict.fromkeys(range(len(workers)), time.monotonic())
    early = 0  # deaths in a row of workers that had only just started
    due: dict[int, float] = {}  # worker index → when to restart it
    failed: BaseProcess | None = None
    while True:
        alive = [w for w in workers if w.exitcode is None]
        if not alive and (stopping or failed is not None or not due):
            return failed
        wait([w.sentinel for w in alive], timeout=0.2 if due else 1.0)
        now = time.monotonic()
        for index, worker in enumerate(workers):
            if worker.exitcode is None or index in due or stopping or failed is not None:
                continue
            early = early + 1 if now - started[index] < EARLY_DEATH_S else 0
            delay = restart_delay(early)
            if delay is None:
                failed = worker
                _stop(workers)
                break
            log.warning(
                "gateway worker %s died (exit code %s); restarting it in %.1f s",
                worker.name,
                worker.exitcode,
                delay,
            )
            due[index] = now + delay
        for index, when in list(due.items()):
            if stopping or failed is not None:
                due.clear()
            elif now >= when:
                del due[index]
                workers[index] = restart(index)
                started[index] = time.monotonic()


def _stop(workers: Sequence[BaseProcess]) -> None:
    for worker in workers:
        if worker.pid is not None and worker.exitcode is None:
            os.kill(worker.pid, signal.SIGTERM)

"""PostgreSQL and Redis for a test run: the one place that decides which servers the suite uses.

For each service, in order: the URL in ``CORRAL_TEST_PG_URL`` / ``CORRAL_TEST_REDIS_URL``; the
system server on its usual port (127.0.0.1:5432 / :6379) when one answers; otherwise a throwaway
server started from Debian's binaries (a temporary data directory and a free port) for this run
and stopped after it. ``CORRAL_TEST_SERVICES=throwaway`` ignores the system servers (CI proves a
bare machine works that way). Where no server can be had, the tests marked ``postgres`` or
``redis`` are skipped, and the run's summary says why.

The chosen URLs are put in the environment, so test modules, fixtures and the Corral processes
the end-to-end tests start all read the same ones (``pg_server_url()``, ``redis_url()``).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

PG_ENV = "CORRAL_TEST_PG_URL"
REDIS_ENV = "CORRAL_TEST_REDIS_URL"
MODE_ENV = "CORRAL_TEST_SERVICES"
SYSTEM_PG = "postgresql://postgres@127.0.0.1:5432"
SYSTEM_REDIS = "redis://127.0.0.1:6379/0"
_START_TIMEOUT_S = 30.0


def pg_server_url() -> str:
    """The PostgreSQL server the tests use, without a database: postgresql://user@host:port."""
    return os.environ.get(PG_ENV, SYSTEM_PG).rstrip("/")


def pg_host_port() -> tuple[str, int]:
    parts = urlsplit(pg_server_url())
    return parts.hostname or "127.0.0.1", parts.port or 5432


def redis_url() -> str:
    """The Redis the tests use (database 0)."""
    return os.environ.get(REDIS_ENV, SYSTEM_REDIS)


def redis_host_port() -> tuple[str, int]:
    parts = urlsplit(redis_url())
    return parts.hostname or "127.0.0.1", parts.port or 6379


@dataclass(frozen=True)
class Choice:
    """Where one service comes from for this run; ``url`` is None when its tests are skipped."""

    service: str  # "postgres" | "redis" (the test marker too)
    url: str | None
    origin: str  # configured | system | throwaway | skipped
    detail: str

    def summary(self) -> str:
        name = {"postgres": "PostgreSQL", "redis": "Redis"}[self.service]
        where = f" at {self.url}" if self.url else ""
        return f"{name}: {self.origin}{where} ({self.detail})"


def answers(host: str, port: int, timeout: float = 0.5) -> bool:
    """Whether something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_until_answering(process: subprocess.Popen[bytes], port: int, log: Path) -> None:
    deadline = time.monotonic() + _START_TIMEOUT_S
    while not answers("127.0.0.1", port, timeout=0.2):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"test server did not start:\n{log.read_text()[-2000:]}")
        time.sleep(0.05)


class ThrowawayServers:
    """The servers this run started; ``stop()`` ends them and removes their data."""

    def __init__(self) -> None:
        self._processes: list[subprocess.Popen[bytes]] = []
        self._dirs: list[Path] = []

    def stop(self) -> None:
        for process in self._processes:
            process.terminate()
        for process in self._processes:
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for directory in self._dirs:
            shutil.rmtree(directory, ignore_errors=True)
        self._processes.clear()
        self._dirs.clear()

    def _workdir(self, name: str) -> Path:
        directory = Path(tempfile.mkdtemp(prefix=f"corral-test-{name}-"))
        self._dirs.append(directory)
        return directory

    def postgres(self, bin_dir: Path) -> str:
        """initdb + postgres on a free loopback port (trust auth, no fsync); its server URL."""
        work = self._workdir("postgres")
        data, log = work / "data", work / "postgres.log"
        run_as = _unprivileged_prefix(work)  # PostgreSQL refuses to run as root
        subprocess.run(
            [*run_as, str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust"],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        port = free_port()
        settings = ["listen_addresses=127.0.0.1", f"unix_socket_directories={work}"]
        settings += ["fsync=off", "synchronous_commit=off", "full_page_writes=off"]
        settings += ["max_connections=300"]
        command = [*run_as, str(bin_dir / "postgres"), "-D", str(data), "-p", str(port)]
        for setting in settings:
            command += ["-c", setting]
        with log.open("wb") as out:
            process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
        self._processes.append(process)
        _wait_until_answering(process, port, log)
        return f"postgresql://postgres@127.0.0.1:{port}"

    def redis(self, binary: str) -> str:
        """redis-server on a free loopback port, nothing persisted; its URL."""
        work = self._workdir("redis")
        log, port = work / "redis.log", free_port()
        command = [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(work)]
        command += ["--save", "", "--appendonly", "no"]
        with log.open("wb") as out:
            process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
        self._processes.append(process)
        _wait_until_answering(process, port, log)
        return f"redis://127.0.0.1:{port}/0"


def _unprivileged_prefix(work: Path) -> list[str]:
    """As root: run as the ``postgres`` (or ``nobody``) user, owning ``work``; else as we are."""
    if os.geteuid() != 0:
        return []
    for user in ("postgres", "nobody"):
        try:
            entry = pwd.getpwnam(user)
        except KeyError:
            continue
        os.chown(work, entry.pw_uid, entry.pw_gid)
        return ["setpriv", f"--reuid={entry.pw_uid}", f"--regid={entry.pw_gid}", "--clear-groups"]
    raise RuntimeError("running as root and no postgres or nobody user to run PostgreSQL as")


def postgres_bin_dir() -> Path | None:
    """Debian's newest PostgreSQL server binaries (/usr/lib/postgresql/N/bin), if installed."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4])
    )
    return Path(found[-1]).parent if found else None


def choose_postgres(servers: ThrowawayServers, *, use_system: bool) -> Choice:
    if PG_ENV in os.environ:
        return Choice("postgres", pg_server_url(), "configured", f"${PG_ENV}")
    if use_system and answers("127.0.0.1", 5432):
        return Choice("postgres", SYSTEM_PG, "system", "a server answers on 5432")
    bin_dir = postgres_bin_dir()
    if bin_dir is None:
        reason = "no server on 127.0.0.1:5432 and no /usr/lib/postgresql/*/bin/initdb"
        return Choice("postgres", None, "skipped", reason + "; apt-get install postgresql")
    url = servers.postgres(bin_dir)
    return Choice("postgres", url, "throwaway", f"started from {bin_dir} for this run")


def choose_redis(servers: ThrowawayServers, *, use_system: bool) -> Choice:
    if REDIS_ENV in os.environ:
        return Choice("redis", redis_url(), "configured", f"${REDIS_ENV}")
    if use_system and answers("127.0.0.1", 6379):
        return Choice("redis", SYSTEM_REDIS, "system", "a server answers on 6379")
    binary = shutil.which("redis-server")
    if binary is None:
        reason = "no server on 127.0.0.1:6379 and no redis-server binary"
        return Choice("redis", None, "skipped", reason + "; apt-get install redis-server")
    url = servers.redis(binary)
    return Choice("redis", url, "throwaway", f"started from {binary} for this run")


def provide(servers: ThrowawayServers, needed: set[str]) -> list[Choice]:
    """Choose (and start, where needed) each service in ``needed``; export the URLs."""
    use_system = os.environ.get(MODE_ENV, "") != "throwaway"
    choosers = {"postgres": choose_postgres, "redis": choose_redis}
    env = {"postgres": PG_ENV, "redis": REDIS_ENV}
    choices = []
    for service in sorted(needed):
        choice = choosers[service](servers, use_system=use_system)
        if choice.url is not None:
            os.environ[env[service]] = choice.url
        choices.append(choice)
    return choices

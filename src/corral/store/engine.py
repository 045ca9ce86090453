"""Database URLs and engines: SQLite in data_dir (WAL) by default, PostgreSQL via asyncpg."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DataError, DBAPIError, IntegrityError, ProgrammingError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from corral.errors import ConfigError, TemporaryError
from corral.settings import CorralSettings

SQLITE_FILE = "corral.db"

_DRIVERS = {
    "sqlite": "sqlite+aiosqlite",
    "postgresql": "postgresql+asyncpg",
    "postgres": "postgresql+asyncpg",
}


def database_url(settings: CorralSettings) -> str:
    """The store's URL: ``store.database_url``, or a SQLite file in ``data_dir`` when unset."""
    if settings.store.database_url:
        return normalise_url(settings.store.database_url)
    return sqlite_url(settings.data_dir / SQLITE_FILE)


def sqlite_url(path: Path) -> str:
    """The async SQLAlchemy URL of a SQLite file."""
    return f"sqlite+aiosqlite:///{path}"


def normalise_url(url: str) -> str:
    """``url`` with Corral's async driver for its database (``postgresql://`` → asyncpg)."""
    parsed = _parse(url)
    driver = _DRIVERS.get(parsed.get_backend_name())
    if driver is None:
        raise ConfigError(
            f"store.database_url: {parsed.get_backend_name()!r} is not supported; "
            "use postgresql+asyncpg://user@host/db, or leave it unset for SQLite in data_dir"
        )
    return parsed.set(drivername=driver).render_as_string(hide_password=False)


def safe_url(url: str) -> str:
    """``url`` fit for messages and logs: the password masked."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "(unparseable database URL)"


DEFAULT_TIMEOUT = 5.0
"""Seconds to connect, or for SQLite to wait for its lock (``store.timeout``)."""
STATEMENT_TIMEOUTS = 6
"""A statement may run this many connect timeouts (30 s by default: long reports pass, a
stalled server does not hold a caller for ever)."""


def open_engine(url: str, timeout: float = DEFAULT_TIMEOUT) -> AsyncEngine:
    """An async engine for ``url`` whose every wait is bounded: PostgreSQL connects within
    ``timeout`` and runs a statement within ``STATEMENT_TIMEOUTS × timeout``, a pooled
    connection is handed out within ``timeout``; SQLite gets WAL, foreign keys and a busy
    timeout of ``timeout``."""
    parsed = _parse(normalise_url(url))
    if parsed.get_backend_name() != "sqlite":
        return create_async_engine(
            parsed,
            pool_pre_ping=True,
            pool_timeout=timeout,
            connect_args={"timeout": timeout, "command_timeout": timeout * STATEMENT_TIMEOUTS},
        )
    if parsed.database and parsed.database != ":memory:":
        _private_file(Path(parsed.database))
    engine = create_async_engine(parsed, connect_args={"timeout": timeout})
    busy_ms = round(timeout * 1000)
    event.listen(
        engine.sync_engine, "connect", lambda conn, _record: _sqlite_pragmas(conn, busy_ms)
    )
    return engine


def _private_file(path: Path) -> None:
    """Create the database file readable by its owner only (SQLite gives its -wal and -shm
    files the same mode), and take group and other access from one created before."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
    if path.stat().st_mode & 0o077:
        path.chmod(0o600)


def _sqlite_pragmas(dbapi_connection: Any, busy_ms: int) -> None:
    cursor = dbapi_connection.cursor()
    for pragma in (
        "journal_mode=WAL",  # readers never block the writer: key refreshes run beside admin writes
        "synchronous=NORMAL",
        "foreign_keys=ON",
        f"busy_timeout={busy_ms}",  # several processes share the file; wait for the lock
    ):
        cursor.execute(f"PRAGMA {pragma}")
    cursor.close()


# PostgreSQL SQLSTATE classes: an outage worth retrying, or a setting to fix.
_RETRYABLE = ("08", "40", "53", "57", "58")  # connection, rollback, resources, shutdown, system
_MISCONFIGURED = ("28", "3D")  # authentication, no such database


@contextlib.contextmanager
def translated(url: str) -> Iterator[None]:
    """Turn a database outage into TemporaryError and a refused login into ConfigError;
    conflicts and bugs (bad SQL, bad data) pass through unchanged."""
    try:
        yield
    except (IntegrityError, ProgrammingError, DataError):
        raise  # a conflict for the caller to name, or a bug: neither is an outage
    except DBAPIError as exc:
        sqlstate = str(getattr(exc.orig, "sqlstate", None) or "")
        if sqlstate.startswith(_MISCONFIGURED):
            raise ConfigError(
                f"the store at {safe_url(url)} refused Corral ({_reason(exc)}); "
                "check store.database_url"
            ) from exc
        if sqlstate and not sqlstate.startswith(_RETRYABLE) and not exc.connection_invalidated:
            raise  # the server understood and said no: a bug, not an outage
        raise _outage(url, exc) from exc
    except (OSError, TimeoutError) as exc:
        raise _outage(url, exc) from exc


def _outage(url: str, exc: BaseException) -> TemporaryError:
    return TemporaryError(
        f"the store at {safe_url(url)} is unavailable ({_reason(exc)}); check that the "
        "database is running and reachable, then retry",
        delay=1.0,
    )


def _reason(exc: BaseException) -> str:
    # The driver's own first line (never SQLAlchemy's, which repeats the SQL and parameters).
    cause = getattr(exc, "orig", None) or exc
    return (str(cause).splitlines() or [type(cause).__name__])[0][:200]


def _parse(url: str) -> URL:
    try:
        return make_url(url)
    except ArgumentError as exc:
        raise ConfigError(
            "store.database_url is not a database URL; expected e.g. "
            "postgresql+asyncpg://user@host/db"
        ) from exc

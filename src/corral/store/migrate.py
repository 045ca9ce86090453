"""Schema migrations: bring a database to the newest revision (or back one) with Alembic."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import AsyncConnection

from corral.store.engine import open_engine, translated

MIGRATIONS = Path(__file__).parent / "migrations"

# One PostgreSQL advisory lock for "migrating Corral's schema": gateways starting together
# take turns, and the later ones find the schema current.
_PG_LOCK = 0x636F7272616C

_Step = Callable[[Config], None]


async def upgrade(url: str, revision: str = "head") -> str | None:
    """Migrate the database at ``url`` up to ``revision``; returns the revision it is at."""
    return await _migrate(url, lambda cfg: command.upgrade(cfg, revision))


async def downgrade(url: str, revision: str = "-1") -> str | None:
    """Migrate the database at ``url`` down to ``revision`` (default: undo the last one)."""
    return await _migrate(url, lambda cfg: command.downgrade(cfg, revision))


async def current(url: str) -> str | None:
    """The revision the database at ``url`` is at (None: no Corral schema yet)."""
    engine = open_engine(url)
    try:
        with translated(url):
            async with engine.connect() as conn:
                return await conn.run_sync(_revision_of)
    finally:
        await engine.dispose()


def head() -> str:
    """The newest revision this version of Corral ships."""
    revision = ScriptDirectory.from_config(_config()).get_current_head()
    if revision is None:
        raise RuntimeError(f"no migrations found in {MIGRATIONS}; the package is incomplete")
    return revision


def history() -> list[str]:
    """Every revision this version of Corral ships, newest first."""
    script = ScriptDirectory.from_config(_config())
    return [revision.revision for revision in script.walk_revisions()]


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


async def _migrate(url: str, step: _Step) -> str | None:
    engine = open_engine(url)
    try:
        with translated(url):
            async with engine.begin() as conn:
                await _lock(conn)
                return await conn.run_sync(_run, step)
    finally:
        await engine.dispose()


async def _lock(conn: AsyncConnection) -> None:
    if conn.dialect.name == "postgresql":
        await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK})


def _run(conn: Connection, step: _Step) -> str | None:
    config = _config()
    config.attributes["connection"] = conn
    step(config)
    return _revision_of(conn)


def _revision_of(conn: Connection) -> str | None:
    return MigrationContext.configure(conn).get_current_revision()

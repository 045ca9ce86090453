"""Fresh SQLite and PostgreSQL databases for tests that touch SQL (dropped afterwards)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import asyncpg

from support.services import pg_server_url


@contextmanager
def postgres_database() -> Iterator[str]:
    """A new, empty PostgreSQL database on the test server (support/services.py); its URL."""
    name = f"corral_test_{uuid.uuid4().hex[:12]}"
    server = pg_server_url()

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(f"{server}/postgres")
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    try:
        yield f"{server.replace('postgresql://', 'postgresql+asyncpg://')}/{name}"
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@contextmanager
def sqlite_database(directory: Path) -> Iterator[str]:
    """A new SQLite file in ``directory``; its URL."""
    yield f"sqlite+aiosqlite:///{directory / 'corral.db'}"

"""Fresh SQLite and PostgreSQL databases for tests that touch SQL (dropped afterwards)."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import asyncpg

PG_HOST = os.environ.get("CORRAL_TEST_PG_HOST", "127.0.0.1")


@contextmanager
def postgres_database() -> Iterator[str]:
    """A new, empty PostgreSQL database on the local server; its URL."""
    name = f"corral_test_{uuid.uuid4().hex[:12]}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(host=PG_HOST, user="postgres", database="postgres")
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    try:
        yield f"postgresql+asyncpg://postgres@{PG_HOST}/{name}"
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@contextmanager
def sqlite_database(directory: Path) -> Iterator[str]:
    """A new SQLite file in ``directory``; its URL."""
    yield f"sqlite+aiosqlite:///{directory / 'corral.db'}"

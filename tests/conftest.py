"""Shared fixtures: fresh, migrated SQLite and PostgreSQL databases for store-backed tests.

PostgreSQL and Redis come from support/services.py (the system servers, or throwaway ones
started for the run; the tests that need them are skipped, with the reason in the summary,
where neither can be had). PostgreSQL: the session migrates one template database, and each
test gets a quick copy of it (CREATE DATABASE ... TEMPLATE), dropped after the test; the
template is dropped at the end of the session. SQLite: a fresh file per test.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import pytest

from corral.store.migrate import upgrade
from support import services
from support.databases import postgres_database, sqlite_database

T = TypeVar("T")
_SERVERS = services.ThrowawayServers()
_CHOICES: list[services.Choice] = []

MakeDatabase = Callable[[str], Awaitable[str]]
BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Provide the servers the selected tests need; skip those that cannot have one."""
    needed = {m for m in ("postgres", "redis") if any(i.get_closest_marker(m) for i in items)}
    _CHOICES.extend(services.provide(_SERVERS, needed))
    for choice in _CHOICES:
        if choice.url is None:
            skip = pytest.mark.skip(reason=f"{choice.service}: {choice.detail}")
            for item in items:
                if item.get_closest_marker(choice.service):
                    item.add_marker(skip)


def pytest_unconfigure(config: pytest.Config) -> None:
    _SERVERS.stop()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _CHOICES:
        terminalreporter.section("test services")
        for choice in _CHOICES:
            terminalreporter.write_line(choice.summary())


def run_in_thread(work: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion on its own loop in another thread (for sync fixtures)."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, work).result()


async def _admin(sql: str) -> None:
    conn = await asyncpg.connect(f"{services.pg_server_url()}/postgres")
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def pg_url(name: str) -> str:
    server = services.pg_server_url().replace("postgresql://", "postgresql+asyncpg://")
    return f"{server}/{name}"


@pytest.fixture(scope="session")
def pg_template() -> Iterator[str]:
    """The name of a migrated PostgreSQL database to copy; created once per session."""
    name = f"corral_test_{os.getpid()}_{secrets.token_hex(3)}"
    run_in_thread(_admin(f'CREATE DATABASE "{name}"'))
    try:
        run_in_thread(upgrade(pg_url(name)))
        yield name
    finally:
        run_in_thread(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
async def make_database(
    tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[MakeDatabase]:
    """``await make_database("sqlite" | "postgres")``: the URL of a fresh, migrated database."""
    clones: list[str] = []

    async def make(kind: str) -> str:
        if kind == "sqlite":
            url = f"sqlite+aiosqlite:///{tmp_path / f'corral-{len(clones)}.db'}"
            clones.append("")
            await upgrade(url)
            return url
        template = request.getfixturevalue("pg_template")
        name = f"{template}_{secrets.token_hex(4)}"
        await _admin(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
        clones.append(name)
        return pg_url(name)

    yield make
    for name in filter(None, clones):
        await _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=BACKENDS)
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, migrated database of each kind, for tests that run their own event loops."""
    maker = sqlite_database(tmp_path) if request.param == "sqlite" else postgres_database()
    with maker as url:
        run_in_thread(upgrade(url))
        yield url


@pytest.fixture(params=BACKENDS)
async def db_url(request: pytest.FixtureRequest, make_database: MakeDatabase) -> str:
    """A fresh, migrated database of each kind (the test runs once per backend)."""
    return await make_database(str(request.param))

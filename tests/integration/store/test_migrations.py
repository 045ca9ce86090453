"""Migrations build exactly the schema the models describe, go back one step, and race safely."""

from __future__ import annotations

import asyncio
import importlib
import pkgutil
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, inspect, text
from sqlalchemy.exc import DBAPIError

import corral.store
from corral.store.engine import open_engine
from corral.store.migrate import current, downgrade, head, history, upgrade
from corral.store.tables import metadata

MakeDatabase = Callable[[str], Awaitable[str]]


def _differences(conn: Connection) -> list[Any]:
    return list(compare_metadata(MigrationContext.configure(conn), metadata))


def _tables(conn: Connection) -> set[str]:
    return set(inspect(conn).get_table_names())


async def _run(url: str, work: Any) -> Any:
    engine = open_engine(url)
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(work)
    finally:
        await engine.dispose()


async def test_the_migrated_schema_matches_the_models(db_url: str) -> None:
    for module in pkgutil.iter_modules(corral.store.__path__, "corral.store."):
        importlib.import_module(module.name)  # every module that declares tables
    assert await current(db_url) == head()
    assert await _run(db_url, _differences) == []


async def test_downgrade_undoes_the_last_migration_and_upgrade_restores_it(db_url: str) -> None:
    assert await downgrade(db_url) == (history()[1:] or [None])[0]
    assert await upgrade(db_url) == head()
    assert await downgrade(db_url, "base") is None
    assert await _run(db_url, _tables) <= {"alembic_version"}
    assert await upgrade(db_url) == head()
    assert {"teams", "users", "api_keys", "audit_log", "corral_meta"} <= await _run(db_url, _tables)


async def test_upgrading_twice_is_harmless(db_url: str) -> None:
    assert await upgrade(db_url) == head()
    assert await upgrade(db_url) == head()


@pytest.mark.parametrize(
    "statement", ["UPDATE audit_log SET action = 'x'", "DELETE FROM audit_log"]
)
async def test_the_database_itself_refuses_to_change_the_audit_log(
    db_url: str, statement: str
) -> None:
    engine = open_engine(db_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO audit_log"
                    " (at, actor_key_id, action, target_type, target_id, changes)"
                    " VALUES (CURRENT_TIMESTAMP, 'k', 'team.create', 'team', 't', '{}')"
                )
            )
        with pytest.raises(DBAPIError, match="append-only"):
            async with engine.begin() as conn:
                await conn.execute(text(statement))
    finally:
        await engine.dispose()


@pytest.mark.postgres
async def test_gateways_starting_together_migrate_one_at_a_time(
    make_database: MakeDatabase,
) -> None:
    url = await make_database("postgres")
    await downgrade(url)
    results = await asyncio.gather(*(upgrade(url) for _ in range(4)))
    assert results == [head()] * 4


async def test_sqlite_runs_in_wal_mode_with_foreign_keys(make_database: MakeDatabase) -> None:
    url = await make_database("sqlite")
    engine = open_engine(url)
    try:
        async with engine.connect() as conn:
            assert (await conn.execute(text("PRAGMA journal_mode"))).scalar() == "wal"
            assert (await conn.execute(text("PRAGMA foreign_keys"))).scalar() == 1
    finally:
        await engine.dispose()

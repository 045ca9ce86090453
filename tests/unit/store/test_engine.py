"""Database URLs: SQLite in data_dir by default, async drivers chosen, passwords never shown."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from sqlalchemy import text

from corral.errors import ConfigError
from corral.settings import CorralSettings, StoreSettings
from corral.store.engine import database_url, normalise_url, open_engine, safe_url, sqlite_url


def test_unset_url_means_a_sqlite_file_in_data_dir(tmp_path: Path) -> None:
    settings = CorralSettings(data_dir=tmp_path)
    assert database_url(settings) == f"sqlite+aiosqlite:///{tmp_path}/corral.db"


@pytest.mark.parametrize(
    ("given", "used"),
    [
        ("postgresql://u:pw@db:5432/corral", "postgresql+asyncpg://u:pw@db:5432/corral"),
        ("postgres://u@db/corral", "postgresql+asyncpg://u@db/corral"),
        ("postgresql+asyncpg://u@db/corral", "postgresql+asyncpg://u@db/corral"),
        ("sqlite:////var/lib/corral.db", "sqlite+aiosqlite:////var/lib/corral.db"),
    ],
)
def test_urls_get_the_async_driver(given: str, used: str) -> None:
    assert normalise_url(given) == used
    assert database_url(CorralSettings(store=StoreSettings(database_url=given))) == used


@pytest.mark.parametrize("bad", ["mysql://u@db/x", "not a url", ""])
def test_unsupported_or_garbled_urls_are_config_errors(bad: str) -> None:
    with pytest.raises(ConfigError, match="database_url"):
        normalise_url(bad)


def test_messages_never_show_the_password() -> None:
    assert "hunter2" not in safe_url("postgresql+asyncpg://u:hunter2@db/corral")
    assert safe_url("::::") == "(unparseable database URL)"


async def test_the_sqlite_files_are_private_to_their_owner(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        (tmp_path / "old.db").touch(mode=0o644)
        for name in ("fresh/corral.db", "old.db"):
            engine = open_engine(sqlite_url(tmp_path / name))
            async with engine.begin() as conn:
                await conn.execute(text("CREATE TABLE t (x INTEGER)"))
                await conn.execute(text("INSERT INTO t VALUES (1)"))
                modes = {
                    p.name: p.stat().st_mode & 0o777
                    for p in (tmp_path / name).parent.iterdir()
                    if p.name.startswith(Path(name).name)
                }
            await engine.dispose()
            assert set(modes.values()) == {0o600}, modes
            assert len(modes) >= 2, modes  # the database and its WAL
        assert (tmp_path / "fresh").stat().st_mode & 0o777 == 0o700
    finally:
        os.umask(old)

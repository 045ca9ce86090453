"""The server secret: from the environment or a private file made once, and checked per store."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import pytest

from corral.errors import ConfigError
from corral.store.memory import InMemoryStore
from corral.store.secret import ENV_VARIABLE, FILE_NAME, check_server_secret, load_server_secret


def test_the_environment_wins_and_must_be_long_enough(tmp_path: Path) -> None:
    assert load_server_secret(tmp_path, {ENV_VARIABLE: "s" * 40}) == b"s" * 40
    assert not (tmp_path / FILE_NAME).exists()
    with pytest.raises(ConfigError, match="too short"):
        load_server_secret(tmp_path, {ENV_VARIABLE: "short"})


def test_the_first_start_writes_a_private_file_that_later_starts_reuse(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    first = load_server_secret(data_dir, {})
    path = data_dir / FILE_NAME
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(first) == 64
    assert load_server_secret(data_dir, {}) == first
    assert list(data_dir.iterdir()) == [path]


def test_processes_starting_together_agree_on_one_secret(tmp_path: Path) -> None:
    seen: list[bytes] = []
    threads = [
        threading.Thread(target=lambda: seen.append(load_server_secret(tmp_path, {})))
        for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(seen)) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == [FILE_NAME]


def test_a_file_others_can_read_is_refused(tmp_path: Path) -> None:
    load_server_secret(tmp_path, {})
    os.chmod(tmp_path / FILE_NAME, 0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        load_server_secret(tmp_path, {})


async def test_a_store_remembers_its_secret_and_refuses_another() -> None:
    store = InMemoryStore()
    await check_server_secret(store, b"a" * 32)
    await check_server_secret(store, b"a" * 32)
    with pytest.raises(ConfigError, match="differs"):
        await check_server_secret(store, b"b" * 32)
    assert b"a" * 32 not in str(await store.get_meta("secret_fingerprint")).encode()

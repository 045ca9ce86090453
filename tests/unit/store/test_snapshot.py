"""The store snapshot: keys (hashes only) and limits kept on disk for a start during an outage."""

from __future__ import annotations

from pathlib import Path

from corral.principals import KeyDirectory, Principal, Role, new_api_key
from corral.store.snapshot import StoreSnapshot
from corral.store.usage import LimitSetting


def test_keys_and_limits_come_back_as_saved_and_no_key_is_written(tmp_path: Path) -> None:
    directory = KeyDirectory(b"secret")
    key = new_api_key()
    principal = Principal(
        key_id="k1",
        role=Role.DEVELOPER,
        team_id="t1",
        user_id="u1",
        allowed_models=frozenset({"b", "a"}),
        expires_at=123.0,
    )
    keys = {directory.hash(key): principal}
    limits = [LimitSetting("team", "t1", rpm=10, monthly_budget_usd=5.0)]
    snapshot = StoreSnapshot(tmp_path / "snap")
    assert snapshot.keys() is None
    assert snapshot.limits() is None
    snapshot.save_keys(keys)
    snapshot.save_limits(limits)
    again = StoreSnapshot(tmp_path / "snap")
    assert again.keys() == keys
    assert again.limits() == limits
    written = b"".join(p.read_bytes() for p in (tmp_path / "snap").iterdir())
    assert key.encode() not in written
    assert all(p.stat().st_mode & 0o077 == 0 for p in (tmp_path / "snap").iterdir())


def test_an_unchanged_snapshot_is_not_rewritten(tmp_path: Path) -> None:
    snapshot = StoreSnapshot(tmp_path)
    snapshot.save_limits([LimitSetting("key", "k1", rpm=1)])
    path = tmp_path / "limits.json"
    path.write_bytes(b"[]")  # a rewrite would restore the content
    snapshot.save_limits([LimitSetting("key", "k1", rpm=1)])
    assert path.read_bytes() == b"[]"
    snapshot.save_limits([LimitSetting("key", "k1", rpm=2)])
    assert StoreSnapshot(tmp_path).limits() == [LimitSetting("key", "k1", rpm=2)]

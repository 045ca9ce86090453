"""KeySync keeps the gateway's key directory in step with the store, without the request path."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping

import pytest

from corral.clock import FakeClock
from corral.errors import TemporaryError
from corral.principals import KeyDirectory, Principal, display_key, hash_key, new_api_key
from corral.store.keysync import KeySync
from corral.store.memory import InMemoryStore
from corral.store.records import Actor, KeyChanges, KeyMaterial, KeySpec

SECRET = b"k" * 32


class FlakyStore(InMemoryStore):
    """An InMemoryStore whose reads and writes fail while ``down`` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.down = False

    async def active_keys(self, now: float) -> dict[str, Principal]:
        if self.down:
            raise TemporaryError("store down")
        return await super().active_keys(now)

    async def change_version(self) -> int:
        if self.down:
            raise TemporaryError("store down")
        return await super().change_version()

    async def key_changes(self, since: int, now: float) -> KeyChanges | None:
        if self.down:
            raise TemporaryError("store down")
        return await super().key_changes(since, now)

    async def record_key_use(self, last_used: Mapping[str, float]) -> None:
        if self.down:
            raise TemporaryError("store down")
        await super().record_key_use(last_used)


async def _key(
    store: InMemoryStore, clock: FakeClock, expires_at: float | None = None
) -> tuple[str, str]:
    team = await store.get_team("t") or await store.create_team(
        "t", "", actor=Actor("a", clock.now())
    )
    secret = new_api_key()
    material = KeyMaterial(hash_key(SECRET, secret), display_key(secret))
    key = await store.create_key(
        material, KeySpec(team.id, None, "k", None, expires_at), actor=Actor("a", clock.now())
    )
    return secret, key.id


async def test_refresh_adds_new_keys_and_drops_revoked_ones() -> None:
    store, clock = InMemoryStore(), FakeClock()
    sync = KeySync(store, KeyDirectory(SECRET), clock)
    secret, key_id = await _key(store, clock)
    assert sync.lookup(secret, clock.now()) is None
    await sync.refresh()
    principal = sync.lookup(secret, clock.now())
    assert principal is not None
    assert principal.key_id == key_id
    await store.revoke_key(key_id, actor=Actor("a", clock.now()))
    await sync.refresh()
    assert sync.lookup(secret, clock.now()) is None
    assert sync.hash(secret) == hash_key(SECRET, secret)


async def test_an_expired_key_stops_at_its_expiry_even_before_a_refresh() -> None:
    store, clock = InMemoryStore(), FakeClock()
    sync = KeySync(store, KeyDirectory(SECRET), clock)
    secret, _ = await _key(store, clock, expires_at=clock.now() + 10)
    await sync.refresh()
    assert sync.lookup(secret, clock.now() + 9) is not None
    assert sync.lookup(secret, clock.now() + 10) is None


async def test_touches_are_batched_and_written_on_flush() -> None:
    store, clock = InMemoryStore(), FakeClock()
    sync = KeySync(store, KeyDirectory(SECRET), clock)
    _, key_id = await _key(store, clock)
    sync.touch(key_id)
    clock.advance(5)
    sync.touch(key_id)
    assert (await store.get_key(key_id)).last_used_at is None
    await sync.flush()
    assert (await store.get_key(key_id)).last_used_at == clock.now()


async def test_a_store_outage_keeps_the_loaded_keys_and_the_pending_touches(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store, clock = FlakyStore(), FakeClock()
    sync = KeySync(store, KeyDirectory(SECRET), clock)
    secret, key_id = await _key(store, clock)
    await sync.refresh()
    sync.touch(key_id)
    store.down = True
    with caplog.at_level(logging.WARNING, logger="corral.store.keysync"):
        await sync.tick()
    assert "serving with the keys loaded before" in caplog.text
    assert sync.lookup(secret, clock.now()) is not None
    with pytest.raises(TemporaryError):
        await sync.start()
    store.down = False
    await sync.tick()
    assert (await store.get_key(key_id)).last_used_at == clock.now()


class SleepLog(FakeClock):
    """A FakeClock that notes every sleep asked of it."""

    def __init__(self) -> None:
        super().__init__()
        self.sleeps: list[float] = []

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        await super().sleep(seconds)


async def test_the_loop_refreshes_on_its_interval_until_stopped() -> None:
    store, clock = InMemoryStore(), SleepLog()
    sync = KeySync(store, KeyDirectory(SECRET), clock, interval=2.0)
    await sync.start()
    secret, key_id = await _key(store, clock)
    for _ in range(20):
        await asyncio.sleep(0)
        if sync.lookup(secret, clock.now()) is not None:
            break
    assert sync.lookup(secret, clock.now()) is not None
    assert clock.sleeps
    assert set(clock.sleeps) == {2.0}
    sync.touch(key_id)
    await sync.stop()
    assert (await store.get_key(key_id)).last_used_at is not None

"""The first start creates one platform-admin key, shown once; later starts create nothing."""

from __future__ import annotations

from corral.principals import KeyDirectory, Role
from corral.store.bootstrap import bootstrap_admin_key
from corral.store.memory import InMemoryStore
from corral.store.records import SYSTEM, AuditQuery

SECRET = b"s" * 32


async def test_first_start_creates_a_working_platform_admin_key_once() -> None:
    store = InMemoryStore()
    first = await bootstrap_admin_key(store, SECRET, 1000.0)
    assert first is not None
    assert first.secret.startswith("ck-")
    assert first.secret not in repr(first)
    directory = KeyDirectory(SECRET)
    directory.replace(await store.active_keys(1000.0))
    principal = directory.lookup(first.secret, 1000.0)
    assert principal is not None
    assert principal.role is Role.PLATFORM_ADMIN
    assert principal.key_id == first.key.id
    assert await bootstrap_admin_key(store, SECRET, 2000.0) is None
    assert len(await store.active_keys(2000.0)) == 1


async def test_bootstrap_is_audited_as_the_system_without_the_secret() -> None:
    store = InMemoryStore()
    boot = await bootstrap_admin_key(store, SECRET, 1000.0)
    assert boot is not None
    entries = await store.list_audit(AuditQuery(oldest_first=True))
    assert [e.action for e in entries] == ["team.create", "user.create", "key.create"]
    assert {e.actor_key_id for e in entries} == {SYSTEM}
    assert boot.secret not in repr(entries)
    assert boot.secret[-4:] in entries[-1].changes["display"][1]

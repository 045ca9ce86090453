"""The Store contract, run on every adapter: InMemoryStore, SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from corral.clock import FakeClock
from corral.errors import Conflict, NotFound
from corral.principals import KeyDirectory, Role
from corral.store import changelog
from corral.store.keysync import KeySync
from corral.store.memory import InMemoryStore
from corral.store.port import Store
from corral.store.records import (
    SYSTEM,
    Actor,
    AuditQuery,
    KeyChanges,
    KeyMaterial,
    KeySpec,
    Listing,
    TeamChange,
)
from corral.store.sql import SqlStore

MakeDatabase = Callable[[str], Awaitable[str]]
T0 = 1_700_000_000.0


def at(offset: float = 0.0, who: str = "key_admin") -> Actor:
    return Actor(who, T0 + offset, "10.0.0.7")


def material(n: int) -> KeyMaterial:
    return KeyMaterial(f"{n:064x}", f"ck-…{n:04d}")


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def store(
    request: pytest.FixtureRequest, make_database: MakeDatabase
) -> AsyncIterator[Store]:
    kind = str(request.param)
    adapter: Store = InMemoryStore() if kind == "memory" else SqlStore(await make_database(kind))
    yield adapter
    await adapter.close()


async def test_teams_are_created_found_by_id_or_name_and_listed_by_name(store: Store) -> None:
    zeta = await store.create_team("zeta", "last", actor=at())
    alpha = await store.create_team("alpha", "first", actor=at(1))
    assert await store.get_team(zeta.id) == zeta
    assert await store.get_team("alpha") == alpha
    assert await store.get_team("nope") is None
    assert [t.name for t in await store.list_teams()] == ["alpha", "zeta"]
    assert zeta.created_at == pytest.approx(T0)


async def test_team_names_are_unique_among_live_teams(store: Store) -> None:
    team = await store.create_team("search", "", actor=at())
    with pytest.raises(Conflict) as refused:
        await store.create_team("search", "again", actor=at())
    assert refused.value.param == "name"
    await store.delete_team(team.id, actor=at(1))
    again = await store.create_team("search", "reborn", actor=at(2))
    assert again.id != team.id
    assert await store.get_team("search") == again


async def test_sql_metacharacters_are_stored_verbatim(store: Store) -> None:
    team = await store.create_team("x", "'; DROP TABLE teams; --", actor=at())
    name = "Robert'); DROP TABLE users;-- \" % _ \\"
    user = await store.create_user(team.id, name, "o'brien@example.com", Role.DEVELOPER, actor=at())
    assert (await store.get_user(user.id)).name == name
    assert (await store.get_user("o'brien@example.com")) == user
    assert (await store.get_team("x")).description == "'; DROP TABLE teams; --"
    assert await store.get_team("%") is None
    assert await store.get_user("%") is None


async def test_deleting_a_team_with_members_needs_force_which_revokes_and_removes(
    store: Store,
) -> None:
    team = await store.create_team("infra", "", actor=at())
    user = await store.create_user(team.id, "Ada", "ada@example.com", Role.DEVELOPER, actor=at())
    key = await store.create_key(material(1), KeySpec(team.id, user.id, "laptop"), actor=at())
    with pytest.raises(Conflict) as refused:
        await store.delete_team(team.id, actor=at(1))
    assert refused.value.param == "force"
    assert "1 user(s) and 1 active key(s)" in refused.value.message
    deleted = await store.delete_team(team.id, actor=at(2), force=True)
    assert deleted.deleted_at == pytest.approx(T0 + 2)
    assert await store.get_team(team.id) is None
    assert await store.get_user(user.id) is None
    revoked = await store.get_key(key.id)
    assert revoked is not None
    assert revoked.revoked_at == pytest.approx(T0 + 2)
    actions = [
        e.action for e in await store.list_audit(AuditQuery(since=T0 + 2, oldest_first=True))
    ]
    assert actions == ["key.revoke", "user.delete", "team.delete"]
    with pytest.raises(NotFound):
        await store.delete_team(team.id, actor=at(3))


async def test_users_have_unique_live_emails_and_optional_email(store: Store) -> None:
    team = await store.create_team("t", "", actor=at())
    ada = await store.create_user(team.id, "Ada", "ada@example.com", Role.TEAM_ADMIN, actor=at())
    await store.create_user(team.id, "No Mail", None, Role.DEVELOPER, actor=at())
    await store.create_user(team.id, "No Mail Either", None, Role.DEVELOPER, actor=at())
    with pytest.raises(Conflict) as refused:
        await store.create_user(team.id, "Imposter", "ada@example.com", Role.DEVELOPER, actor=at())
    assert refused.value.param == "email"
    await store.delete_user(ada.id, actor=at(1))
    await store.create_user(team.id, "Ada 2", "ada@example.com", Role.DEVELOPER, actor=at(2))
    assert [u.name for u in await store.list_users(team.id)] == [
        "Ada 2",
        "No Mail",
        "No Mail Either",
    ]
    with pytest.raises(NotFound):
        await store.create_user("team_missing", "Ghost", None, Role.DEVELOPER, actor=at())


async def test_update_user_changes_only_given_fields_and_audits_the_diff(store: Store) -> None:
    team = await store.create_team("t", "", actor=at())
    user = await store.create_user(team.id, "Ada", None, Role.DEVELOPER, actor=at())
    changed = await store.update_user(user.id, actor=at(5), role=Role.TEAM_ADMIN)
    assert (changed.name, changed.role) == ("Ada", Role.TEAM_ADMIN)
    same = await store.update_user(user.id, actor=at(6), role=Role.TEAM_ADMIN)
    assert same == changed
    entries = await store.list_audit(AuditQuery(target_id=user.id))
    assert [e.action for e in entries] == ["user.update", "user.create"]
    assert entries[0].changes == {"role": ("developer", "team-admin")}
    assert entries[0].actor_key_id == "key_admin"
    assert entries[0].address == "10.0.0.7"


async def test_a_team_keeps_its_maximum_key_lifetime_and_updates_it_audited(store: Store) -> None:
    team = await store.create_team("t", "", actor=at(), max_key_lifetime=90 * 86400)
    assert (await store.get_team("t")).max_key_lifetime == 90 * 86400
    assert (await store.create_team("u", "", actor=at())).max_key_lifetime is None
    key = await store.create_key(material(1), KeySpec(team.id, None, "ci"), actor=at())
    lowered = await store.update_team(
        team.id, actor=at(5), change=TeamChange(max_key_lifetime=3600)
    )
    assert (lowered.max_key_lifetime, lowered.description) == (3600, "")
    assert await store.get_team(team.id) == lowered
    assert (await store.get_key(key.id)).expires_at is None  # existing keys are not changed
    described = await store.update_team(team.id, actor=at(6), change=TeamChange(description="d"))
    assert (described.max_key_lifetime, described.description) == (3600, "d")
    removed = await store.update_team(
        team.id, actor=at(7), change=TeamChange(max_key_lifetime=None)
    )
    assert removed.max_key_lifetime is None
    assert await store.update_team(team.id, actor=at(8), change=TeamChange()) == removed
    entries = await store.list_audit(AuditQuery(target_id=team.id))
    assert [e.action for e in entries] == ["team.update"] * 3 + ["team.create"]
    assert entries[2].changes == {"max_key_lifetime": (90 * 86400, 3600)}
    assert entries[0].changes == {"max_key_lifetime": (3600, None)}
    with pytest.raises(NotFound):
        await store.update_team("team_missing", actor=at(), change=TeamChange(description="x"))


async def test_rotation_keeps_the_sooner_of_the_old_expiry_and_the_one_asked(store: Store) -> None:
    team = await store.create_team("t", "", actor=at())
    forever = await store.create_key(material(1), KeySpec(team.id, None, "ci"), actor=at())
    _, capped = await store.rotate_key(
        forever.id, material(2), actor=at(1), grace_until=None, expires_at=T0 + 500
    )
    assert capped.expires_at == pytest.approx(T0 + 500)
    _, kept = await store.rotate_key(
        capped.id, material(3), actor=at(2), grace_until=None, expires_at=T0 + 900
    )
    assert kept.expires_at == pytest.approx(T0 + 500)


async def test_keys_carry_their_owner_role_into_active_keys(store: Store) -> None:
    team = await store.create_team("t", "", actor=at())
    lead = await store.create_user(team.id, "Lead", None, Role.TEAM_ADMIN, actor=at())
    user_key = await store.create_key(
        material(1),
        KeySpec(team.id, lead.id, "laptop", frozenset({"m1", "m2"}), T0 + 100),
        actor=at(),
    )
    service_key = await store.create_key(material(2), KeySpec(team.id, None, "ci"), actor=at())
    active = await store.active_keys(T0)
    assert set(active) == {material(1).key_hash, material(2).key_hash}
    lead_principal = active[material(1).key_hash]
    assert lead_principal.key_id == user_key.id
    assert lead_principal.role is Role.TEAM_ADMIN
    assert lead_principal.allowed_models == frozenset({"m1", "m2"})
    assert lead_principal.expires_at == pytest.approx(T0 + 100)
    assert active[material(2).key_hash].role is Role.DEVELOPER
    assert active[material(2).key_hash].key_id == service_key.id
    await store.update_user(lead.id, actor=at(1), role=Role.DEVELOPER)
    assert (await store.active_keys(T0))[material(1).key_hash].role is Role.DEVELOPER
    assert material(1).key_hash not in await store.active_keys(T0 + 100)


async def test_a_key_must_belong_to_a_live_team_and_a_user_of_that_team(store: Store) -> None:
    one = await store.create_team("one", "", actor=at())
    two = await store.create_team("two", "", actor=at())
    stranger = await store.create_user(two.id, "S", None, Role.DEVELOPER, actor=at())
    with pytest.raises(Conflict):
        await store.create_key(material(1), KeySpec(one.id, stranger.id, "k"), actor=at())
    with pytest.raises(NotFound):
        await store.create_key(material(1), KeySpec("team_missing", None, "k"), actor=at())
    assert await store.active_keys(T0) == {}


async def test_revoked_and_expired_keys_leave_the_active_set_but_stay_listed(store: Store) -> None:
    team = await store.create_team("t", "", actor=at())
    keep = await store.create_key(material(1), KeySpec(team.id, None, "keep"), actor=at())
    gone = await store.create_key(material(2), KeySpec(team.id, None, "gone"), actor=at(1))
    brief = await store.create_key(
        material(3), KeySpec(team.id, None, "brief", None, T0 + 10), actor=at(2)
    )
    revoked = await store.revoke_key(gone.id, actor=at(3))
    assert revoked.state(T0 + 3) == "revoked"
    with pytest.raises(Conflict):
        await store.revoke_key(gone.id, actor=at(4))
    with pytest.raises(NotFound):
        await store.revoke_key("key_missing", actor=at(4))
    assert set(await store.active_keys(T0 + 20)) == {material(1).key_hash}
    listed = await store.list_keys(team_id=team.id, now=T0 + 20)
    assert [k.id for k in listed] == [keep.id]
    everything = await store.list_keys(team_id=team.id, include_inactive=True, now=T0 + 20)
    assert [k.id for k in everything] == [brief.id, gone.id, keep.id]


async def test_rotation_revokes_or_shortens_the_old_key_and_copies_its_settings(
    store: Store,
) -> None:
    team = await store.create_team("t", "", actor=at())
    spec = KeySpec(team.id, None, "ci", frozenset({"m"}), T0 + 1000)
    old = await store.create_key(material(1), spec, actor=at())
    retired, new = await store.rotate_key(old.id, material(2), actor=at(5), grace_until=None)
    assert retired.revoked_at == pytest.approx(T0 + 5)
    assert (new.name, new.allowed_models, new.team_id) == ("ci", frozenset({"m"}), team.id)
    assert new.expires_at == pytest.approx(T0 + 1000)
    graced, newer = await store.rotate_key(new.id, material(3), actor=at(6), grace_until=T0 + 66)
    assert graced.revoked_at is None
    assert graced.expires_at == pytest.approx(T0 + 66)
    assert set(await store.active_keys(T0 + 7)) == {material(2).key_hash, material(3).key_hash}
    assert set(await store.active_keys(T0 + 70)) == {material(3).key_hash}
    with pytest.raises(Conflict):
        await store.rotate_key(old.id, material(4), actor=at(8), grace_until=None)
    rotate = (await store.list_audit(AuditQuery(action="key.rotate", target_id=new.id)))[0]
    assert rotate.changes["replaced_by"] == (None, newer.id)


async def test_deleting_a_user_revokes_their_keys(store: Store) -> None:
    team = await store.create_team("t", "", actor=at())
    user = await store.create_user(team.id, "Ada", None, Role.DEVELOPER, actor=at())
    key = await store.create_key(material(1), KeySpec(team.id, user.id, "k"), actor=at())
    await store.delete_user(user.id, actor=at(1))
    assert await store.active_keys(T0 + 1) == {}
    assert (await store.get_key(key.id)).revoked_at == pytest.approx(T0 + 1)


async def test_last_used_only_moves_forward(store: Store) -> None:
    team = await store.create_team("t", "", actor=at())
    key = await store.create_key(material(1), KeySpec(team.id, None, "k"), actor=at())
    await store.record_key_use({key.id: T0 + 50, "key_unknown": T0})
    await store.record_key_use({key.id: T0 + 20})
    assert (await store.get_key(key.id)).last_used_at == pytest.approx(T0 + 50)
    await store.record_key_use({})


async def test_audit_never_holds_a_key_hash_and_filters_and_pages(store: Store) -> None:
    team = await store.create_team("t", "", actor=at(0, "key_a"))
    for n in range(5):
        await store.create_key(
            material(n), KeySpec(team.id, None, f"k{n}"), actor=at(n + 1, "key_b")
        )
    everything = await store.list_audit(AuditQuery(limit=100))
    assert len(everything) == 6
    assert all(material(n).key_hash not in str(e) for e in everything for n in range(5))
    assert [e.id for e in everything] == sorted((e.id for e in everything), reverse=True)
    by_b = await store.list_audit(AuditQuery(actor_key_id="key_b", limit=2))
    assert len(by_b) == 2
    older = await store.list_audit(AuditQuery(actor_key_id="key_b", before_id=by_b[-1].id))
    assert len(older) == 3
    window = await store.list_audit(AuditQuery(since=T0 + 2, until=T0 + 4))
    assert [e.at for e in window] == pytest.approx([T0 + 3, T0 + 2])
    first = await store.list_audit(AuditQuery(oldest_first=True, limit=1))
    assert first[0].action == "team.create"
    assert first[0].changes == {"description": (None, ""), "name": (None, "t")}
    newer = await store.list_audit(
        AuditQuery(oldest_first=True, after_id=first[0].id, team_id=team.id)
    )
    assert len(newer) == 5


async def test_bootstrap_happens_once_even_when_racing(store: Store) -> None:
    first, second = await asyncio.gather(
        store.bootstrap_admin(
            material(1), team_name="platform", user_name="admin", actor=at(0, SYSTEM)
        ),
        store.bootstrap_admin(
            material(2), team_name="platform", user_name="admin", actor=at(0, SYSTEM)
        ),
    )
    winners = [k for k in (first, second) if k is not None]
    assert len(winners) == 1
    active = await store.active_keys(T0)
    assert len(active) == 1
    assert next(iter(active.values())).role is Role.PLATFORM_ADMIN
    assert [t.name for t in await store.list_teams()] == ["platform"]
    later = await store.bootstrap_admin(
        material(3), team_name="platform", user_name="admin", actor=at(9)
    )
    assert later is None


async def test_meta_is_set_once(store: Store) -> None:
    assert await store.get_meta("x") is None
    assert await store.put_meta_once("x", "1") is True
    assert await store.put_meta_once("x", "2") is False
    assert await store.get_meta("x") == "1"


async def test_key_changes_replay_what_changed_since_a_version(store: Store) -> None:
    team = await store.create_team("t", "", actor=at())
    lead = await store.create_user(team.id, "Lead", None, Role.TEAM_ADMIN, actor=at())
    await store.create_key(material(1), KeySpec(team.id, lead.id, "laptop"), actor=at())
    ci = await store.create_key(material(2), KeySpec(team.id, None, "ci"), actor=at())
    since = await store.change_version()
    assert await store.key_changes(since, T0) == KeyChanges(since, {}, frozenset())
    await store.create_key(material(3), KeySpec(team.id, None, "new"), actor=at(1))
    await store.revoke_key(ci.id, actor=at(1))
    await store.update_user(lead.id, actor=at(1), role=Role.DEVELOPER)
    changed = await store.key_changes(since, T0 + 1)
    assert changed is not None
    assert changed.version == await store.change_version() > since
    assert set(changed.active) == {material(1).key_hash, material(3).key_hash}
    assert changed.active[material(1).key_hash].role is Role.DEVELOPER
    assert changed.gone == {material(2).key_hash}
    assert await store.key_changes(changed.version, T0 + 1) == KeyChanges(
        changed.version, {}, frozenset()
    )
    await store.delete_team(team.id, actor=at(2), force=True)
    dropped = await store.key_changes(changed.version, T0 + 2)
    assert dropped is not None
    assert dropped.active == {}
    # Every key of the team is gone (the one revoked before may be named again: harmless).
    assert dropped.gone >= {material(1).key_hash, material(3).key_hash}


async def test_a_directory_kept_by_changes_matches_a_full_reload(store: Store) -> None:
    clock = FakeClock(T0)
    sync = KeySync(store, KeyDirectory(b"s" * 32), clock)
    await sync.start()
    teams = [await store.create_team(f"t{n}", "", actor=at()) for n in range(3)]
    users = [
        await store.create_user(t.id, f"u{n}", None, Role.DEVELOPER, actor=at())
        for n, t in enumerate(teams)
    ]
    keys = [
        await store.create_key(
            material(n), KeySpec(teams[n % 3].id, users[n % 3].id, f"k{n}"), actor=at()
        )
        for n in range(12)
    ]
    await sync.refresh()
    await store.revoke_key(keys[0].id, actor=at(1))
    await store.rotate_key(keys[1].id, material(100), actor=at(1), grace_until=None)
    await store.update_user(users[1].id, actor=at(1), role=Role.TEAM_ADMIN)
    await store.delete_user(users[2].id, actor=at(1))
    await sync.refresh()
    assert sync.directory.entries() == await store.active_keys(clock.now())
    await sync.stop()


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def test_a_log_pruned_past_a_version_asks_for_a_full_reload(
    kind: str, make_database: MakeDatabase, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(changelog, "RETAINED", 2)
    monkeypatch.setattr(changelog, "PRUNE_EVERY", 1)
    store = SqlStore(await make_database(kind))
    try:
        team = await store.create_team("t", "", actor=at())
        since = await store.change_version()
        for n in range(4):
            await store.create_key(material(n), KeySpec(team.id, None, f"k{n}"), actor=at())
        assert await store.key_changes(since, T0) is None
        assert await store.key_changes(since + 2, T0) is not None
    finally:
        await store.close()


@pytest.mark.postgres
async def test_concurrent_writers_get_versions_in_commit_order(make_database: MakeDatabase) -> None:
    store = SqlStore(await make_database("postgres"))
    try:
        team = await store.create_team("t", "", actor=at())
        since = await store.change_version()
        await asyncio.gather(
            *(
                store.create_key(material(n), KeySpec(team.id, None, f"k{n}"), actor=at())
                for n in range(30)
            )
        )
        changed = await store.key_changes(since, T0)
        assert changed is not None
        assert changed.version == since + 30
        assert set(changed.active) == {material(n).key_hash for n in range(30)}
    finally:
        await store.close()


async def test_lists_page_by_keyset_and_filter_by_name_prefix(store: Store) -> None:
    for name in ("delta", "alpha", "charlie", "bravo", "alps"):
        await store.create_team(name, "", actor=at())
    pages, after = [], None
    while True:
        page = await store.list_teams(Listing(limit=2, after=after))
        pages.append([t.name for t in page])
        if len(page) < 2:
            break
        after = (page[-1].name, page[-1].id)
    assert pages == [["alpha", "alps"], ["bravo", "charlie"], ["delta"]]
    assert [t.name for t in await store.list_teams(Listing(name_prefix="al"))] == ["alpha", "alps"]
    team = (await store.list_teams(Listing(name_prefix="delta")))[0]
    for n in range(3):
        await store.create_user(team.id, f"user {n}", None, Role.DEVELOPER, actor=at())
    first = await store.list_users(team.id, Listing(limit=2))
    rest = await store.list_users(team.id, Listing(limit=2, after=(first[-1].name, first[-1].id)))
    assert [u.name for u in first + rest] == ["user 0", "user 1", "user 2"]


async def test_keys_page_newest_first_with_ties_broken_by_id(store: Store) -> None:
    team = await store.create_team("t", "", actor=at())
    made = [
        await store.create_key(material(n), KeySpec(team.id, None, f"k{n}"), actor=at(n // 2))
        for n in range(5)
    ]
    await store.revoke_key(made[0].id, actor=at(9))
    expected = sorted(made[1:], key=lambda k: (-k.created_at, k.id))
    seen, after = [], None
    while True:
        page = await store.list_keys(now=T0 + 10, listing=Listing(limit=2, after=after))
        seen += page
        if len(page) < 2:
            break
        after = (page[-1].created_at, page[-1].id)
    assert [k.id for k in seen] == [k.id for k in expected]
    revoked = await store.list_keys(now=T0 + 10, state="revoked")
    assert [k.id for k in revoked] == [made[0].id]
    named = await store.list_keys(
        now=T0 + 10, include_inactive=True, listing=Listing(name_prefix="k0")
    )
    assert [k.id for k in named] == [made[0].id]

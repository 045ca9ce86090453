"""Limits reach a gateway's LimitBook by change version: only what changed, on every adapter."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from corral.composition.quotas import apply_limit_changes, refresh_limits
from corral.counters.limits import Limits
from corral.gateway.quotas import LimitBook
from corral.store.records import Actor
from corral.store.usage import LimitChanges, LimitSetting, SqlUsage, UsageLedger
from corral.store.usage_memory import InMemoryUsage

MakeDatabase = Callable[[str], Awaitable[str]]
ADMIN = Actor("key_admin", 1_700_000_000.0)
DEFAULTS = Limits(rpm=1000)


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def usage(
    request: pytest.FixtureRequest, make_database: MakeDatabase
) -> AsyncIterator[UsageLedger]:
    kind = str(request.param)
    ledger: UsageLedger = (
        InMemoryUsage() if kind == "memory" else SqlUsage(await make_database(kind))
    )
    yield ledger
    await ledger.close()


async def test_limit_changes_name_only_what_was_set_after_a_version(usage: UsageLedger) -> None:
    await usage.set_limits(LimitSetting("team", "team_a", rpm=10), ADMIN)
    since = await usage.limits_version()
    assert await usage.limit_changes(since) == LimitChanges(since, {})
    await usage.set_limits(LimitSetting("key", "key_b", tpm=500), ADMIN)
    await usage.set_limits(LimitSetting("team", "team_a", rpm=20), ADMIN)
    changed = await usage.limit_changes(since)
    assert changed is not None
    assert changed.version == await usage.limits_version() > since
    assert changed.limits == {
        ("key", "key_b"): LimitSetting("key", "key_b", tpm=500),
        ("team", "team_a"): LimitSetting("team", "team_a", rpm=20),
    }


async def test_a_book_kept_by_changes_matches_a_full_load(usage: UsageLedger) -> None:
    book = LimitBook(DEFAULTS, DEFAULTS)
    version = await refresh_limits(book, usage)
    await usage.set_limits(LimitSetting("team", "team_a", rpm=10, monthly_budget_usd=5.0), ADMIN)
    await usage.set_limits(LimitSetting("key", "key_b", max_concurrent=2), ADMIN)
    version = await apply_limit_changes(book, usage, version)
    assert book.team("team_a") == Limits(rpm=10, monthly_budget_usd=5.0)
    assert book.key("key_b") == Limits(rpm=1000, max_concurrent=2)
    assert book.scopes("key_b", "team_a") is not None
    await usage.set_limits(LimitSetting("team", "team_a", rpm=30), ADMIN)
    assert await apply_limit_changes(book, usage, version) == await usage.limits_version()
    assert book.team("team_a") == Limits(rpm=30)
    fresh = LimitBook(DEFAULTS, DEFAULTS)
    await refresh_limits(fresh, usage)
    for holder in ("team_a", "key_b"):
        assert book.team(holder) == fresh.team(holder)
        assert book.key(holder) == fresh.key(holder)

"""The limit book: what a key's requests count against, kept until the limits change."""

from __future__ import annotations

from corral.counters.limits import Limits
from corral.gateway.quotas import LimitBook


def test_scopes_follow_the_limits_read_from_the_store() -> None:
    book = LimitBook(key_defaults=Limits(), team_defaults=Limits())
    assert book.scopes("k1", "t1") is None  # nothing limits anyone yet
    book.replace({"k1": Limits(rpm=10)}, {"t1": Limits(monthly_budget_usd=5)})
    scopes = book.scopes("k1", "t1")
    assert scopes is not None
    assert [(s.name, s.limits.rpm, s.limits.budget_micros) for s in scopes] == [
        ("key:k1", 10, None),
        ("team:t1", None, 5_000_000),
    ]
    assert book.scopes("k1", "t1") is scopes  # built once
    assert book.scopes("k2", None) is None  # another key, no team: unlimited
    book.replace({}, {"t1": Limits(monthly_budget_usd=5)})
    changed = book.scopes("k1", "t1")
    assert changed is not None
    assert [s.limits.rpm for s in changed] == [None, None]  # the key's limit was removed

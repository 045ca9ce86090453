"""LocalCounters: rate limits on a fake clock, concurrency, budgets, settlement and expiry."""

from __future__ import annotations

import pytest

from corral.clock import FakeClock
from corral.counters import (
    AdmissionRequest,
    Admitted,
    BudgetPeriod,
    Limits,
    LocalCounters,
    Refused,
    Scope,
)

MONTH = BudgetPeriod(key="2023-11", starts_at=1_698_796_800.0, resets_at=1_701_388_800.0)


def request(
    key: Limits, team: Limits | None = None, *, tokens: int = 10, cost: int = 0, ttl: float = 900
) -> AdmissionRequest:
    scopes = [Scope("key", "k1", key)]
    if team is not None:
        scopes.append(Scope("team", "t1", team))
    return AdmissionRequest(
        scopes=tuple(scopes), tokens=tokens, cost_micros=cost, period=MONTH, ttl=ttl
    )


async def admit(counters: LocalCounters, req: AdmissionRequest, now: float) -> Admitted:
    decision = await counters.reserve(req, now)
    assert isinstance(decision, Admitted), decision
    return decision


async def refuse(counters: LocalCounters, req: AdmissionRequest, now: float) -> Refused:
    decision = await counters.reserve(req, now)
    assert isinstance(decision, Refused), decision
    return decision


async def test_rpm_allows_a_burst_then_one_request_per_interval() -> None:
    clock, counters = FakeClock(), LocalCounters()
    req = request(Limits(rpm=3))
    windows = [(await admit(counters, req, clock.now())).requests for _ in range(3)]
    assert [(w.remaining, w.reset) for w in windows if w] == [(2, 20.0), (1, 40.0), (0, 60.0)]
    refusal = await refuse(counters, req, clock.now())
    assert (refusal.reason, refusal.limit, refusal.retry_after) == ("rate_limit", "requests", 20.0)
    assert (refusal.allowed, refusal.used, refusal.needed) == (3, 3, 1)
    clock.advance(19.9)
    await refuse(counters, req, clock.now())
    clock.advance(0.1)
    await admit(counters, req, clock.now())
    clock.advance(60)
    after_a_minute = (await admit(counters, req, clock.now())).requests
    assert after_a_minute is not None
    assert after_a_minute.remaining == 2


async def test_tpm_reserves_then_settlement_gives_back_the_unused_tokens() -> None:
    clock, counters = FakeClock(), LocalCounters()
    req = request(Limits(tpm=1000), tokens=600)
    first = await admit(counters, req, clock.now())
    assert first.tokens is not None
    assert first.tokens.remaining == 400
    refusal = await refuse(counters, req, clock.now())
    assert refusal.limit == "tokens"
    assert refusal.needed == 600
    assert refusal.used == 600
    assert refusal.retry_after == pytest.approx(12.0)  # 200 tokens at 1000/60 per second
    assert await counters.settle(first.reservation, 100, 0, clock.now())
    second = await admit(counters, req, clock.now())
    assert second.tokens is not None
    assert second.tokens.remaining == 300


async def test_a_request_larger_than_the_tpm_limit_is_refused_for_good() -> None:
    refusal = await refuse(LocalCounters(), request(Limits(tpm=100), tokens=101), 0.0)
    assert refusal.limit == "tokens"
    assert refusal.retry_after is None


async def test_settling_more_tokens_than_reserved_charges_the_excess() -> None:
    clock, counters = FakeClock(), LocalCounters()
    req = request(Limits(tpm=1000), tokens=100)
    admitted = await admit(counters, req, clock.now())
    await counters.settle(admitted.reservation, 700, 0, clock.now())
    nxt = await admit(counters, req, clock.now())
    assert nxt.tokens is not None
    assert nxt.tokens.remaining == 200


async def test_concurrency_slots_are_freed_by_settle_and_release() -> None:
    counters = LocalCounters()
    req = request(Limits(max_concurrent=2))
    a = await admit(counters, req, 0.0)
    b = await admit(counters, req, 0.0)
    refusal = await refuse(counters, req, 0.0)
    assert (refusal.reason, refusal.used, refusal.allowed) == ("concurrency", 2, 2)
    assert await counters.release(a.reservation, 0.0)
    c = await admit(counters, req, 0.0)
    assert await counters.settle(b.reservation, 5, 0, 0.0)
    assert await counters.settle(c.reservation, 5, 0, 0.0)
    await admit(counters, req, 0.0)
    await admit(counters, req, 0.0)


async def test_budget_holds_worst_case_and_settles_actual_cost_once() -> None:
    counters = LocalCounters()
    req = request(Limits(monthly_budget_usd=0.001), cost=400)
    a = await admit(counters, req, 0.0)
    b = await admit(counters, req, 0.0)
    refusal = await refuse(counters, req, 0.0)
    assert (refusal.reason, refusal.used, refusal.allowed, refusal.needed) == (
        "budget",
        800,
        1000,
        400,
    )
    assert refusal.resets_at == MONTH.resets_at
    assert refusal.retry_after == MONTH.resets_at
    assert await counters.settle(a.reservation, 10, 150, 0.0)
    assert not await counters.settle(a.reservation, 10, 150, 0.0)
    assert not await counters.release(a.reservation, 0.0)
    spend = await counters.spend("key:k1", MONTH.key)
    assert (spend.spent_micros, spend.held_micros) == (150, 400)
    await admit(counters, req, 0.0)
    await counters.release(b.reservation, 0.0)
    assert (await counters.spend("key:k1", MONTH.key)).held_micros == 400


async def test_team_limits_apply_across_its_keys_and_the_tightest_window_is_reported() -> None:
    counters = LocalCounters()
    team = Limits(rpm=4)
    for key_id in ("a", "b"):
        req = AdmissionRequest(
            scopes=(Scope("key", key_id, Limits(rpm=10)), Scope("team", "t", team)),
            tokens=1,
            cost_micros=0,
            period=MONTH,
        )
        for _ in range(2):
            admitted = await admit(counters, req, 0.0)
    assert admitted.requests is not None
    assert admitted.requests.limit == 4
    assert admitted.requests.remaining == 0
    refusal = await refuse(counters, req, 0.0)
    assert refusal.scope.kind == "team"
    assert refusal.scope.id == "t"


async def test_nothing_is_taken_from_any_scope_when_one_refuses() -> None:
    counters = LocalCounters()
    req = request(Limits(rpm=5, max_concurrent=5), Limits(rpm=1))
    await admit(counters, req, 0.0)
    await refuse(counters, req, 0.0)
    key_only = request(Limits(rpm=5, max_concurrent=5))
    admitted = await admit(counters, key_only, 0.0)
    assert admitted.requests is not None
    assert admitted.requests.remaining == 3


async def test_budget_refusal_wins_over_a_rate_refusal() -> None:
    req = request(Limits(rpm=1, monthly_budget_usd=0), cost=1)
    refusal = await refuse(LocalCounters(), req, 0.0)
    assert refusal.reason == "budget"


async def test_the_longest_wait_is_reported_among_rate_refusals() -> None:
    counters = LocalCounters()
    req = request(Limits(rpm=2, tpm=60), tokens=60)
    await admit(counters, req, 0.0)
    refusal = await refuse(counters, req, 0.0)
    assert refusal.limit == "tokens"
    assert refusal.retry_after == pytest.approx(60.0)


async def test_expired_reservations_are_reconciled_at_their_reserved_size() -> None:
    clock, counters = FakeClock(), LocalCounters()
    req = request(Limits(max_concurrent=1, monthly_budget_usd=1), cost=300, ttl=30)
    admitted = await admit(counters, req, clock.now())
    assert await counters.expired_reservations(clock.now() + 29) == []
    clock.advance(30)
    assert await counters.expired_reservations(clock.now()) == [admitted.reservation]
    assert await counters.reconcile(clock.now()) == [admitted.reservation]
    assert await counters.reconcile(clock.now()) == []
    assert not await counters.settle(admitted.reservation, 1, 1, clock.now())
    spend = await counters.spend("key:k1", MONTH.key)
    assert (spend.spent_micros, spend.held_micros) == (300, 0)
    await admit(counters, req, clock.now())


async def test_seeded_spend_only_raises_and_added_spend_accumulates() -> None:
    counters = LocalCounters()
    await counters.seed_spend("team:t1", MONTH.key, 700)
    await counters.seed_spend("team:t1", MONTH.key, 500)
    await counters.add_spend("team:t1", MONTH.key, 200)
    assert (await counters.spend("team:t1", MONTH.key)).spent_micros == 900
    req = request(Limits(), Limits(monthly_budget_usd=0.001), cost=101)
    refusal = await refuse(counters, req, 0.0)
    assert refusal.scope.kind == "team"
    assert refusal.used == 900


async def test_free_requests_pass_an_exhausted_budget() -> None:
    await admit(LocalCounters(), request(Limits(monthly_budget_usd=0), cost=0), 0.0)


def test_limits_inherit_unset_fields_and_count_budget_in_micros() -> None:
    own = Limits(rpm=10, monthly_budget_usd=12.5)
    merged = own.over(Limits(rpm=100, tpm=5000, max_concurrent=4))
    assert (merged.rpm, merged.tpm, merged.max_concurrent) == (10, 5000, 4)
    assert merged.budget_micros == 12_500_000
    assert Limits().budget_micros is None

"""FailOpenCounters: a busy pool is back-pressure, a failed call is not yet an outage, and while
Redis is down rate limits fail open per process but budgets only by this process's share."""

from __future__ import annotations

import asyncio
import logging
import math
from dataclasses import replace

import pytest

from corral.counters import AdmissionRequest, Admitted, BudgetPeriod, Limits, Scope
from corral.counters.failopen import FailOpenCounters
from corral.counters.local import LocalCounters
from corral.counters.outage import CountersState
from corral.counters.port import CountersBusy, CountersUnreachable, Refused, Reservation
from corral.counters.shares import BudgetOutageMode

MONTH = BudgetPeriod(key="2023-11", starts_at=1_698_796_800.0, resets_at=1_701_388_800.0)
BUDGETED = AdmissionRequest(
    scopes=(Scope("team", "t1", Limits(rpm=1000, monthly_budget_usd=0.001)),),
    tokens=10,
    cost_micros=37,
    period=MONTH,
)
UNBUDGETED = AdmissionRequest(
    scopes=(Scope("key", "k1", Limits(rpm=100)),), tokens=10, cost_micros=37, period=MONTH
)


class FlakyShared(LocalCounters):
    """A shared backend that can be switched off or made busy; counts the calls that reach it."""

    backend = "shared"

    def __init__(self) -> None:
        super().__init__()
        self.down = False
        self.busy = False
        self.calls = 0

    def _check(self) -> None:
        self.calls += 1
        if self.busy:
            raise CountersBusy("The shared counters are busy: all 1 connections stayed busy.")
        if self.down:
            raise CountersUnreachable("The shared counters in Redis cannot be used.")

    async def reserve(self, request: AdmissionRequest, now: float) -> Admitted | Refused:
        self._check()
        decision = await super().reserve(request, now)
        spends = [await self.spend(s.name, request.period.key) for s in request.scopes]
        return replace(decision, spends=tuple(spends))

    async def settle(
        self, reservation: Reservation, tokens: int, cost_micros: int, now: float
    ) -> bool:
        self._check()
        return await super().settle(reservation, tokens, cost_micros, now)

    async def add_spend(self, scope: str, period: str, micros: int) -> None:
        self._check()
        await super().add_spend(scope, period, micros)


def fleet_member(
    processes: int = 1, budgets: BudgetOutageMode = "share"
) -> tuple[FailOpenCounters, FlakyShared]:
    shared = FlakyShared()
    return FailOpenCounters(shared, budgets=budgets, processes=processes), shared


async def reserve(
    counters: FailOpenCounters, now: float, request: AdmissionRequest = UNBUDGETED
) -> Reservation:
    decision = await counters.reserve(request, now)
    assert isinstance(decision, Admitted)
    return decision.reservation


async def go_down(counters: FailOpenCounters, shared: FlakyShared, at: float) -> None:
    """Redis stops answering at ``at``; three failed calls over a second declare it down."""
    shared.down = True
    for offset in (0.0, 0.5, 1.0):
        await reserve(counters, at + offset)
    assert counters.state is CountersState.DEGRADED


def unavailable(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if "unavailable" in r.getMessage()]


async def test_a_busy_pool_is_back_pressure_never_an_outage(
    caplog: pytest.LogCaptureFixture,
) -> None:
    counters, shared = fleet_member()
    shared.busy = True
    for i in range(50):
        with pytest.raises(CountersBusy):
            await counters.reserve(BUDGETED if i % 2 else UNBUDGETED, 100.0 + i / 10)
    assert counters.state is CountersState.SHARED
    assert counters.refusals["busy"] == 50
    assert counters.outages == 0
    assert unavailable(caplog) == []
    shared.busy = False
    assert (await reserve(counters, 106.0)).backend == "shared"


async def test_one_failed_call_is_not_an_outage_and_a_budget_is_not_guessed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    counters, shared = fleet_member()
    shared.down = True
    with pytest.raises(CountersUnreachable, match="only the shared counters can check"):
        await counters.reserve(BUDGETED, 100.0)
    assert (await reserve(counters, 100.1)).backend == "local"  # rate limits: per process
    assert counters.state is CountersState.SHARED
    assert counters.refusals["failing"] == 1
    assert unavailable(caplog) == []


async def test_an_outage_is_declared_once_and_redis_is_then_tried_once_per_interval(
    caplog: pytest.LogCaptureFixture,
) -> None:
    counters, shared = fleet_member()
    with caplog.at_level(logging.WARNING, logger="corral.counters"):
        await go_down(counters, shared, 100.0)
        for i in range(10):
            await reserve(counters, 101.0 + i / 10)
    assert counters.degraded_since == 101.0
    assert counters.transitions[CountersState.DEGRADED] == 1
    assert shared.calls == 3  # the next probe waits two seconds
    [line] = unavailable(caplog)
    assert "after 3 failed calls over 1.0s" in line.getMessage()
    assert "each process admits only its share" in line.getMessage()


async def test_redis_is_back_after_probes_succeed_over_time(
    caplog: pytest.LogCaptureFixture,
) -> None:
    counters, shared = fleet_member()
    await go_down(counters, shared, 100.0)
    shared.down = False
    with caplog.at_level(logging.WARNING, logger="corral.counters"):
        assert (await reserve(counters, 103.0)).backend == "shared"  # a probe
        assert counters.state is CountersState.DEGRADED
        assert (await reserve(counters, 104.0)).backend == "local"
        assert (await reserve(counters, 105.0)).backend == "shared"
    assert counters.state is CountersState.SHARED
    assert counters.transitions[CountersState.SHARED] == 1
    assert [r.getMessage() for r in caplog.records if "back" in r.getMessage()] == [
        "Shared counters are back after 4s; limits are shared across gateways again."
    ]


async def test_while_down_each_process_admits_only_its_share_of_the_budget() -> None:
    counters, shared = fleet_member(processes=2)
    await counters.seed_spend("team:t1", MONTH.key, 600)  # from the ledger: 400 left
    await go_down(counters, shared, 100.0)
    admitted = [await reserve(counters, 102.0, BUDGETED) for _ in range(5)]  # 5 × 37 <= 200
    with pytest.raises(CountersUnreachable, match="share of what was left of team 't1'"):
        await counters.reserve(BUDGETED, 102.0)
    assert counters.refusals["outage_budget"] == 1
    await counters.settle(admitted[0], 5, 0, 102.5)  # a request that cost nothing frees 37
    assert (await reserve(counters, 102.6, BUDGETED)).backend == "local"
    assert (await reserve(counters, 102.7)).backend == "local"  # no budget: per process


async def test_the_share_comes_from_what_redis_last_answered() -> None:
    counters, shared = fleet_member(processes=1)
    await shared.seed_spend("team:t1", MONTH.key, 900)  # other gateways spent it
    first = await reserve(counters, 99.0, BUDGETED)  # Redis answers: 900 spent, 37 held
    await go_down(counters, shared, 100.0)
    assert (await reserve(counters, 102.0, BUDGETED)).backend == "local"  # 63 left: one fits
    with pytest.raises(CountersUnreachable):
        await counters.reserve(BUDGETED, 102.0)
    assert first.backend == "shared"


async def test_refuse_mode_answers_503_to_every_budgeted_request_while_down() -> None:
    counters, shared = fleet_member(budgets="refuse")
    await go_down(counters, shared, 100.0)
    with pytest.raises(CountersUnreachable, match="budgets_on_redis_outage: refuse"):
        await counters.reserve(BUDGETED, 102.0)
    assert (await reserve(counters, 102.0)).backend == "local"


async def test_open_mode_counts_budgets_per_process_for_availability() -> None:
    counters, shared = fleet_member(processes=4, budgets="open")
    await go_down(counters, shared, 100.0)
    admitted = 0
    while isinstance(await counters.reserve(BUDGETED, 102.0), Admitted):
        admitted += 1
    assert admitted == 1000 // 37  # the whole budget, in this process alone


async def test_recovery_hands_redis_what_was_admitted_locally() -> None:
    counters, shared = fleet_member()
    await go_down(counters, shared, 100.0)
    in_flight = await reserve(counters, 102.0, BUDGETED)
    done = await reserve(counters, 102.0, BUDGETED)
    await counters.settle(done, 10, 20, 102.5)
    shared.down = False
    await reserve(counters, 103.0)  # Redis answers: it is owed 20 spent and a 37 hold
    assert (await shared.spend("team:t1", MONTH.key)).spent_micros == 20 + 37
    await reserve(counters, 105.0)
    assert counters.state is CountersState.SHARED
    await counters.settle(in_flight, 10, 10, 106.0)
    await reserve(counters, 106.5)  # the next answer corrects the hold to the real cost
    assert (await shared.spend("team:t1", MONTH.key)).spent_micros == 20 + 10


async def test_settlements_missed_during_an_outage_are_replayed() -> None:
    counters, shared = fleet_member()
    held = await reserve(counters, 0.0, BUDGETED)
    shared.down = True
    assert await counters.settle(held, 10, 12, 1.0)
    assert (await shared.spend("team:t1", MONTH.key)).held_micros == 37
    shared.down = False
    await reserve(counters, 3.0)
    spend = await shared.spend("team:t1", MONTH.key)
    assert spend.spent_micros == 12
    assert spend.held_micros == 0


async def test_a_full_deferred_queue_drops_and_counts_instead_of_growing() -> None:
    shared = FlakyShared()
    counters = FailOpenCounters(shared, max_deferred=1)
    first, second = await reserve(counters, 0.0), await reserve(counters, 0.0)
    shared.down = True
    await counters.settle(first, 1, 1, 1.0)
    await counters.settle(second, 1, 1, 2.0)
    assert counters.dropped_settlements == 1


async def test_local_reservations_reconciled_at_expiry_are_owed_to_redis_once() -> None:
    counters, shared = fleet_member()
    await go_down(counters, shared, 100.0)
    await reserve(counters, 102.0, BUDGETED)  # hangs; expires (900 s) before Redis is back
    await reserve(counters, 1050.0, BUDGETED)  # hangs; expires after Redis is back
    assert len(await counters.reconcile(1100.0)) == 1 + 3  # with go_down's three
    shared.down = False
    await reserve(counters, 1103.0)  # Redis is owed one settled and one held request
    assert (await shared.spend("team:t1", MONTH.key)).spent_micros == 2 * 37
    await reserve(counters, 1105.0)
    assert len(await counters.reconcile(2000.0)) == 1
    await reserve(counters, 2001.0)
    assert (await shared.spend("team:t1", MONTH.key)).spent_micros == 2 * 37
    assert (await shared.spend("key:k1", MONTH.key)).spent_micros == 3 * 37


class LateShared(FlakyShared):
    """A shared backend behind a stalled link: a reserve times out for the caller but still
    runs when the link heals (the command was already on its way)."""

    def __init__(self) -> None:
        super().__init__()
        self.stalled = False

    async def reserve(self, request: AdmissionRequest, now: float) -> Admitted | Refused:
        if self.stalled:
            await LocalCounters.reserve(self, request, now)  # lands; its answer never arrives
            raise CountersUnreachable("The shared counters in Redis cannot be used (timeout).")
        return await super().reserve(request, now)


async def test_a_reserve_that_lands_after_the_timeout_is_released_when_redis_answers() -> None:
    shared = LateShared()
    counters = FailOpenCounters(shared)
    shared.stalled = True
    late = replace(UNBUDGETED, request_id="req_late")
    decision = await counters.reserve(late, 100.0)
    assert isinstance(decision, Admitted)
    assert decision.reservation.backend == "local"  # admitted here: Redis did not answer
    assert [r.request_id for r in await shared.expired_reservations(math.inf)] == ["req_late"]
    await counters.settle(decision.reservation, 10, 500, 101.0)
    shared.stalled = False
    await reserve(counters, 106.0)  # Redis answers again
    assert [r.request_id for r in await shared.expired_reservations(math.inf)] == [""]
    assert counters.late_released == 1
    spend = await shared.spend("key:k1", MONTH.key)
    assert spend.held_micros == 37  # only the request in flight now; the late hold is gone
    assert spend.spent_micros == 500  # the request settled locally, pushed to Redis once


class SlowShared(FlakyShared):
    """A shared backend whose add_spend yields, so two requests drain at the same time."""

    async def add_spend(self, scope: str, period: str, micros: int) -> None:
        await asyncio.sleep(0)
        await super().add_spend(scope, period, micros)


async def test_concurrent_requests_push_spend_settled_locally_exactly_once() -> None:
    shared = SlowShared()
    counters = FailOpenCounters(shared)
    shared.down = True
    local = await reserve(counters, 100.0)
    await counters.settle(local, 10, 500, 101.0)
    shared.down = False
    reservations = await asyncio.gather(*(reserve(counters, 106.0) for _ in range(3)))
    assert {r.backend for r in reservations} == {"shared"}
    assert (await shared.spend("key:k1", MONTH.key)).spent_micros == 500

"""FailOpenCounters: per-process counting while the shared backend is down, and the way back."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math

import pytest

from corral.counters import AdmissionRequest, Admitted, BudgetPeriod, Limits, Scope
from corral.counters.failopen import CountersState, FailOpenCounters
from corral.counters.local import LocalCounters
from corral.counters.port import Refused, Reservation
from corral.errors import TemporaryError

MONTH = BudgetPeriod(key="2023-11", starts_at=1_698_796_800.0, resets_at=1_701_388_800.0)
REQUEST = AdmissionRequest(
    scopes=(Scope("team", "t1", Limits(rpm=100, monthly_budget_usd=1)),),
    tokens=10,
    cost_micros=500,
    period=MONTH,
)


class FlakyShared(LocalCounters):
    """A shared backend that can be switched off; counts the calls that reach it."""

    backend = "shared"

    def __init__(self) -> None:
        super().__init__()
        self.down = False
        self.calls = 0

    def _check(self) -> None:
        self.calls += 1
        if self.down:
            raise TemporaryError("The shared counters in Redis cannot be used (ConnectionError).")

    async def reserve(self, request: AdmissionRequest, now: float) -> Admitted | Refused:
        self._check()
        return await super().reserve(request, now)

    async def settle(
        self, reservation: Reservation, tokens: int, cost_micros: int, now: float
    ) -> bool:
        self._check()
        return await super().settle(reservation, tokens, cost_micros, now)

    async def add_spend(self, scope: str, period: str, micros: int) -> None:
        self._check()
        await super().add_spend(scope, period, micros)


async def reserve(counters: FailOpenCounters, now: float) -> Reservation:
    decision = await counters.reserve(REQUEST, now)
    assert isinstance(decision, Admitted)
    return decision.reservation


async def test_an_outage_is_served_locally_and_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    shared = FlakyShared()
    counters = FailOpenCounters(shared, retry_interval=5.0)
    shared.down = True
    with caplog.at_level(logging.WARNING, logger="corral.counters"):
        reservations = [await reserve(counters, 100.0 + i) for i in range(4)]
    assert {r.backend for r in reservations} == {"local"}
    assert counters.state is CountersState.DEGRADED
    assert counters.degraded_since == 100.0
    assert counters.outages == 1
    assert shared.calls == 1  # the next try waits for the retry interval
    unavailable = [r for r in caplog.records if "per-process counters" in r.getMessage()]
    assert len(unavailable) == 1


async def test_the_shared_backend_is_retried_and_used_again_when_back(
    caplog: pytest.LogCaptureFixture,
) -> None:
    shared = FlakyShared()
    counters = FailOpenCounters(shared, retry_interval=5.0)
    shared.down = True
    await reserve(counters, 100.0)
    await reserve(counters, 105.0)
    assert shared.calls == 2
    assert counters.state is CountersState.DEGRADED
    shared.down = False
    with caplog.at_level(logging.WARNING, logger="corral.counters"):
        await reserve(counters, 109.0)
        back = await reserve(counters, 110.0)
    assert back.backend == "shared"
    assert counters.state is CountersState.SHARED
    assert counters.degraded_since is None
    assert any("are back after 10s" in r.getMessage() for r in caplog.records)


async def test_settlements_missed_during_an_outage_are_replayed() -> None:
    shared = FlakyShared()
    counters = FailOpenCounters(shared, retry_interval=1.0)
    held = await reserve(counters, 0.0)
    shared.down = True
    assert await counters.settle(held, 10, 120, 1.0)
    local = await reserve(counters, 1.5)
    assert await counters.settle(local, 10, 300, 1.6)
    assert (await shared.spend("team:t1", MONTH.key)).held_micros == 500
    shared.down = False
    await reserve(counters, 3.0)
    spend = await shared.spend("team:t1", MONTH.key)
    assert spend.spent_micros == 120 + 300  # replayed settlement, then spend settled locally
    assert spend.held_micros == 500  # only the request just admitted


async def test_a_full_deferred_queue_drops_and_counts_instead_of_growing() -> None:
    shared = FlakyShared()
    counters = FailOpenCounters(shared, retry_interval=60.0, max_deferred=1)
    first, second = await reserve(counters, 0.0), await reserve(counters, 0.0)
    shared.down = True
    await counters.settle(first, 1, 1, 1.0)
    await counters.settle(second, 1, 1, 2.0)
    assert counters.dropped_settlements == 1


class LateShared(FlakyShared):
    """A shared backend behind a stalled link: a reserve times out for the caller but still
    runs when the link heals (the command was already on its way)."""

    def __init__(self) -> None:
        super().__init__()
        self.stalled = False

    async def reserve(self, request: AdmissionRequest, now: float) -> Admitted | Refused:
        if self.stalled:
            await LocalCounters.reserve(self, request, now)  # lands; its answer never arrives
            raise TemporaryError("The shared counters in Redis cannot be used (TimeoutError).")
        return await super().reserve(request, now)


async def test_a_reserve_that_lands_after_the_timeout_is_released_when_redis_answers() -> None:
    shared = LateShared()
    counters = FailOpenCounters(shared, retry_interval=5.0)
    shared.stalled = True
    late = dataclasses.replace(REQUEST, request_id="req_late")
    decision = await counters.reserve(late, 100.0)
    assert isinstance(decision, Admitted)
    assert decision.reservation.backend == "local"
    assert [r.request_id for r in await shared.expired_reservations(math.inf)] == ["req_late"]
    await counters.settle(decision.reservation, 10, 500, 101.0)
    shared.stalled = False
    await reserve(counters, 106.0)  # the first call after the retry interval reaches Redis
    assert [r.request_id for r in await shared.expired_reservations(math.inf)] == [""]
    assert counters.late_released == 1
    spend = await shared.spend("team:t1", MONTH.key)
    assert spend.held_micros == 500  # only the request in flight now; the late hold is gone
    assert spend.spent_micros == 500  # the request settled locally, pushed to Redis once


class SlowShared(FlakyShared):
    """A shared backend whose add_spend yields, so two requests drain at the same time."""

    async def add_spend(self, scope: str, period: str, micros: int) -> None:
        await asyncio.sleep(0)
        await super().add_spend(scope, period, micros)


async def test_concurrent_requests_push_spend_settled_locally_exactly_once() -> None:
    shared = SlowShared()
    counters = FailOpenCounters(shared, retry_interval=5.0)
    shared.down = True
    local = await reserve(counters, 100.0)
    await counters.settle(local, 10, 500, 101.0)
    shared.down = False
    reservations = await asyncio.gather(*(reserve(counters, 106.0) for _ in range(3)))
    assert {r.backend for r in reservations} == {"shared"}
    assert (await shared.spend("team:t1", MONTH.key)).spent_micros == 500

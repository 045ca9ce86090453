"""Requests their gateway never finished: one estimated ledger record each, then settled."""

from __future__ import annotations

import dataclasses

import pytest

from corral.clock import FakeClock
from corral.composition.quotas import settle_lost_requests
from corral.counters import LocalCounters, Reservation
from corral.counters.port import ScopeCharge
from corral.gateway.metering import UsageEvent
from corral.gateway.policies import lost_requests, quotas
from corral.store import usage as sql_usage
from corral.store.usage_memory import InMemoryUsage
from support.usage import PRICED_MODEL, costly_request

MODEL = PRICED_MODEL


async def reserve(counters: LocalCounters, clock: FakeClock, request_id: str) -> Reservation:
    request = costly_request(request_id, clock.now())
    decision = await counters.reserve(request, clock.now())
    assert hasattr(decision, "reservation")
    return decision.reservation  # type: ignore[union-attr]


def real_record(request_id: str, at: float) -> UsageEvent:
    estimate = lost_requests.lost_request_record(
        Reservation("x", "local", (), 0, 0, "2023-11", at, request_id, "m")
    )
    return dataclasses.replace(
        estimate,
        key_id="k1",
        team_id="t1",
        prompt_tokens=104,
        completion_tokens=20,
        cost_usd=0.000144,
        estimated=False,
        status=200,
        outcome="ok",
    )


def test_the_estimate_bills_what_was_reserved() -> None:
    held = Reservation(
        id="res",
        backend="redis",
        charges=(ScopeCharge("key:k1", 0, False), ScopeCharge("team:t1", 0, True)),
        tokens=1000,
        cost_micros=1896,
        period="2023-11",
        expires_at=1_700_000_660.0,
        request_id="req-1",
        model="m",
        prompt_tokens=104,
        user_id="u1",
        admitted_at=1_700_000_000.0,
    )
    record = lost_requests.lost_request_record(held)
    assert (record.request_id, record.key_id, record.team_id, record.user_id, record.model) == (
        "req-1",
        "k1",
        "t1",
        "u1",
        "m",
    )
    assert (record.prompt_tokens, record.completion_tokens) == (104, 896)
    assert record.cost_usd == pytest.approx(0.001896)
    assert record.estimated
    assert (record.outcome, record.status, record.time) == ("gateway_lost", 0, 1_700_000_000.0)


def test_the_store_and_the_policy_agree_on_the_lost_outcome() -> None:
    assert sql_usage.LOST_OUTCOME == lost_requests.LOST_OUTCOME


async def test_an_expired_reservation_gets_one_estimated_record_and_is_settled() -> None:
    counters, clock, ledger = LocalCounters(), FakeClock(), InMemoryUsage()
    held = await reserve(counters, clock, "req-1")
    assert await settle_lost_requests(counters, ledger, clock.now()) == []  # not expired yet
    clock.advance(MODEL.timeouts.total + quotas.RESERVATION_MARGIN_S)
    assert await settle_lost_requests(counters, ledger, clock.now()) == [held]
    assert await settle_lost_requests(counters, ledger, clock.now()) == []
    record = ledger.records["req-1"]
    assert (record.prompt_tokens, record.completion_tokens, record.estimated) == (104, 896, True)
    spend = await counters.spend("team:t1", held.period)
    assert (spend.spent_micros, spend.held_micros) == (1896, 0)
    # The request finishes after all (it was hung, not lost): its settlement finds nothing to
    # give back, and its real record replaces the estimate.
    assert not await counters.settle(held, 124, 144, clock.now())
    await ledger.write_usage([real_record("req-1", clock.now())])
    assert len(ledger.records) == 1
    assert not ledger.records["req-1"].estimated


async def test_a_record_written_before_the_crash_is_kept() -> None:
    counters, clock, ledger = LocalCounters(), FakeClock(), InMemoryUsage()
    await reserve(counters, clock, "req-1")
    await ledger.write_usage([real_record("req-1", clock.now())])
    clock.advance(3600)
    assert len(await settle_lost_requests(counters, ledger, clock.now())) == 1
    assert len(ledger.records) == 1
    assert ledger.records["req-1"].outcome == "ok"


async def test_holds_stay_when_the_record_cannot_be_written() -> None:
    class DownLedger(InMemoryUsage):
        async def write_usage(self, records: object) -> None:
            raise RuntimeError("store down")

    counters, clock = LocalCounters(), FakeClock()
    await reserve(counters, clock, "req-1")
    clock.advance(3600)
    with pytest.raises(RuntimeError):
        await settle_lost_requests(counters, DownLedger(), clock.now())
    assert len(await counters.expired_reservations(clock.now())) == 1

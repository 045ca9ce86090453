"""A gateway crashes mid-request: the next start bills the request once, estimated, from Redis.

In-process counters die with their process, reservations included; only the Redis backend
carries a crashed gateway's reservations into the next start, so this is tested against it.
"""

from __future__ import annotations

import dataclasses

import pytest
from prometheus_client import CollectorRegistry

from corral.clock import FakeClock
from corral.composition.quotas import running_quotas
from corral.counters import Admitted
from corral.counters.redis import RedisCounters
from corral.gateway.metering import UsageEvent
from corral.gateway.policies import quotas
from corral.gateway.policies.lost_requests import lost_request_record
from corral.settings import LimitSettings
from corral.store.usage import SqlUsage, UsageFilter
from support.services import redis_url
from support.usage import PRICED_MODEL, costly_request

pytestmark = pytest.mark.redis

MODEL = PRICED_MODEL
TTL = MODEL.timeouts.total + quotas.RESERVATION_MARGIN_S


async def crash_mid_request(prefix: str, clock: FakeClock, request_id: str) -> UsageEvent:
    """A gateway admits a request and dies before settling it; the record it would have made."""
    gateway = RedisCounters.from_url(redis_url(), prefix=prefix)
    request = costly_request(request_id, clock.now())
    decision = await gateway.reserve(request, clock.now())
    assert isinstance(decision, Admitted)
    await gateway.aclose()  # the process is gone: nothing settles, nothing is recorded
    estimate = lost_request_record(decision.reservation)
    return dataclasses.replace(
        estimate,
        prompt_tokens=104,
        completion_tokens=20,
        cost_usd=0.000144,
        estimated=False,
        status=200,
        outcome="ok",
    )


async def start_gateway(prefix: str, usage: SqlUsage, clock: FakeClock) -> None:
    """A gateway process starting (and, at once, stopping): its start reconciles."""
    settings = LimitSettings(redis_url=redis_url(), redis_prefix=prefix)
    async with running_quotas(settings, usage, clock, CollectorRegistry()):
        pass


async def records(usage: SqlUsage) -> dict[str, tuple[object, ...]]:
    from sqlalchemy import select

    from corral.store.usage import UsageRow

    async with usage._engine.connect() as conn:
        rows = await conn.execute(select(UsageRow))
        return {
            r.request_id: (r.prompt_tokens, r.completion_tokens, r.estimated, r.outcome)
            for r in rows
        }


async def test_the_next_start_bills_a_lost_request_once_and_settles_its_hold(
    database: str, prefix: str, gateways: object
) -> None:
    clock, usage = FakeClock(), SqlUsage(database)
    try:
        await crash_mid_request(prefix, clock, "req-1")
        await start_gateway(prefix, usage, clock)  # restarted quickly: not expired yet
        assert await records(usage) == {}
        clock.advance(TTL)
        await start_gateway(prefix, usage, clock)
        await start_gateway(prefix, usage, clock)  # and again: still one record
        assert await records(usage) == {"req-1": (104, 896, True, "gateway_lost")}
        total = await usage.report(UsageFilter(since=0, team_id="t1"), [])
        assert total[0]["cost_usd"] == pytest.approx(0.001896)
        shared = RedisCounters.from_url(redis_url(), prefix=prefix)
        try:
            spend = await shared.spend("team:t1", quotas.month_window(clock.now()).key)
            assert (spend.spent_micros, spend.held_micros) == (1896, 0)
            assert await shared.expired_reservations(clock.now()) == []
        finally:
            await shared.aclose()
    finally:
        await usage.close()


async def test_a_record_written_before_the_crash_stays_the_only_one(
    database: str, prefix: str, gateways: object
) -> None:
    clock, usage = FakeClock(), SqlUsage(database)
    try:
        real = await crash_mid_request(prefix, clock, "req-1")
        await usage.write_usage([real])  # the ledger got it; the settlement never ran
        clock.advance(TTL)
        await start_gateway(prefix, usage, clock)
        assert await records(usage) == {"req-1": (104, 20, False, "ok")}
    finally:
        await usage.close()


async def test_a_spooled_record_replayed_after_the_start_replaces_the_estimate(
    database: str, prefix: str, gateways: object
) -> None:
    clock, usage = FakeClock(), SqlUsage(database)
    try:
        real = await crash_mid_request(prefix, clock, "req-1")
        clock.advance(TTL)
        await start_gateway(prefix, usage, clock)
        assert await records(usage) == {"req-1": (104, 896, True, "gateway_lost")}
        await usage.write_usage([real, real])  # the disk spool, replayed after the start
        assert await records(usage) == {"req-1": (104, 20, False, "ok")}
    finally:
        await usage.close()

"""RedisCounters against the real Redis: parity with LocalCounters, several gateways, expiry."""

from __future__ import annotations

import asyncio
import random
import subprocess
import sys
from collections.abc import Callable

import pytest

from corral.clock import FakeClock
from corral.counters import (
    AdmissionRequest,
    Admitted,
    BudgetPeriod,
    Counters,
    Limits,
    LocalCounters,
    Refused,
    Reservation,
    Scope,
)
from corral.counters.redis import RedisCounters
from support.services import redis_url

pytestmark = pytest.mark.redis

GatewayFactory = Callable[[], RedisCounters]
MONTH = BudgetPeriod(key="2023-11", starts_at=1_698_796_800.0, resets_at=1_701_388_800.0)
SCOPES = {
    "key:a": Scope("key", "a", Limits(rpm=5, tpm=2000, max_concurrent=3)),
    "key:b": Scope("key", "b", Limits(rpm=20, monthly_budget_usd=0.01)),
    "team:t": Scope("team", "t", Limits(rpm=8, tpm=3000, monthly_budget_usd=0.02)),
}


def random_request(rng: random.Random) -> AdmissionRequest:
    key = SCOPES[rng.choice(["key:a", "key:b"])]
    return AdmissionRequest(
        scopes=(key, SCOPES["team:t"]),
        tokens=rng.randrange(1, 900),
        cost_micros=rng.randrange(0, 3000),
        period=MONTH,
        ttl=rng.choice([30.0, 600.0]),
    )


def summary(decision: Admitted | Refused) -> tuple[object, ...]:
    windows = (decision.requests, decision.tokens)
    shown = tuple((w.limit, w.remaining, round(w.reset, 3)) for w in windows if w is not None)
    if isinstance(decision, Admitted):
        return ("admitted", shown)
    wait = None if decision.retry_after is None else round(decision.retry_after, 3)
    return (decision.limit, decision.scope.name, wait, decision.used, decision.needed, shown)


async def step(
    counters: Counters, rng: random.Random, open_: list[Reservation], now: float
) -> object:
    action = rng.random()
    if action < 0.6 or not open_:
        decision = await counters.reserve(random_request(rng), now)
        if isinstance(decision, Admitted):
            open_.append(decision.reservation)
        return summary(decision)
    reservation = open_.pop(rng.randrange(len(open_)))
    if action < 0.9:
        return await counters.settle(
            reservation, rng.randrange(0, 1200), rng.randrange(0, 4000), now
        )
    return await counters.release(reservation, now)


async def test_redis_makes_the_same_decisions_as_local_counters(
    gateways: GatewayFactory,
) -> None:
    local, shared = LocalCounters(), gateways()
    rng_local, rng_shared = random.Random(7), random.Random(7)
    open_local: list[Reservation] = []
    open_shared: list[Reservation] = []
    clock, refusals, control = FakeClock(), 0, random.Random(1)
    for _ in range(400):
        clock.advance(control.choice([0.0, 0.37, 2.5, 11.0]))
        expected = await step(local, rng_local, open_local, clock.now())
        got = await step(shared, rng_shared, open_shared, clock.now())
        assert got == expected
        refusals += isinstance(expected, tuple) and expected[0] != "admitted"
        if control.random() < 0.05:
            assert len(await local.reconcile(clock.now())) == len(
                await shared.reconcile(clock.now())
            )
            open_local[:] = [r for r in open_local if r.expires_at > clock.now()]
            open_shared[:] = [r for r in open_shared if r.expires_at > clock.now()]
    assert refusals > 20  # the scenario exercised the limits, not just the happy path
    for name in ("key:a", "key:b", "team:t"):
        assert await shared.spend(name, MONTH.key) == await local.spend(name, MONTH.key)


async def test_two_gateways_share_a_rate_limit_on_a_fake_clock(gateways: GatewayFactory) -> None:
    first, second = gateways(), gateways()
    clock = FakeClock()
    request = AdmissionRequest(
        scopes=(Scope("team", "t", Limits(rpm=4)),), tokens=1, cost_micros=0, period=MONTH
    )
    decisions = [await g.reserve(request, clock.now()) for g in (first, second, first, second)]
    assert all(isinstance(d, Admitted) for d in decisions)
    refused = await second.reserve(request, clock.now())
    assert isinstance(refused, Refused)
    assert refused.retry_after == pytest.approx(15.0)
    clock.advance(15.0)
    assert isinstance(await first.reserve(request, clock.now()), Admitted)


async def test_a_crashed_gateways_reservation_is_reconciled_by_another(
    gateways: GatewayFactory,
) -> None:
    crashed, survivor, other = gateways(), gateways(), gateways()
    request = AdmissionRequest(
        scopes=(Scope("key", "k", Limits(max_concurrent=1, monthly_budget_usd=1)),),
        tokens=10,
        cost_micros=4000,
        period=MONTH,
        ttl=60.0,
        request_id="req-1",
        model="m",
    )
    admitted = await crashed.reserve(request, 1000.0)
    assert isinstance(admitted, Admitted)
    await crashed.aclose()
    assert isinstance(await survivor.reserve(request, 1001.0), Refused)
    assert await survivor.expired_reservations(1059.0) == []
    found = await survivor.expired_reservations(1060.0)
    assert found == [admitted.reservation]
    results = await asyncio.gather(survivor.reconcile(1060.0), other.reconcile(1060.0))
    assert sorted(len(r) for r in results) == [0, 1]
    spend = await other.spend("key:k", MONTH.key)
    assert (spend.spent_micros, spend.held_micros) == (4000, 0)
    assert isinstance(await survivor.reserve(request, 1061.0), Admitted)


async def test_a_retried_settlement_from_any_gateway_counts_once(gateways: GatewayFactory) -> None:
    gateway_a, gateway_b = gateways(), gateways()
    request = AdmissionRequest(
        scopes=(Scope("team", "t", Limits(tpm=1000)),), tokens=500, cost_micros=900, period=MONTH
    )
    admitted = await gateway_a.reserve(request, 0.0)
    assert isinstance(admitted, Admitted)
    outcomes = await asyncio.gather(
        *(g.settle(admitted.reservation, 100, 300, 0.0) for g in (gateway_a, gateway_b) * 3)
    )
    assert sorted(outcomes) == [False] * 5 + [True]
    spend = await gateway_b.spend("team:t", MONTH.key)
    assert (spend.spent_micros, spend.held_micros) == (300, 0)
    after = await gateway_b.reserve(request, 0.0)
    assert isinstance(after, Admitted)
    assert after.tokens is not None
    assert after.tokens.remaining == 400


async def test_spend_seeded_from_the_ledger_only_raises(gateways: GatewayFactory) -> None:
    counters = gateways()
    await counters.seed_spend("team:t", MONTH.key, 5000)
    await counters.seed_spend("team:t", MONTH.key, 3000)
    await counters.add_spend("team:t", MONTH.key, 250)
    assert (await counters.spend("team:t", MONTH.key)).spent_micros == 5250


GATEWAY_PROCESS = """
import asyncio, sys
from corral.counters import AdmissionRequest, Admitted, BudgetPeriod, Limits, Scope
from corral.counters.redis import RedisCounters

async def main() -> None:
    counters = RedisCounters.from_url(sys.argv[1], prefix=sys.argv[2])
    request = AdmissionRequest(
        scopes=(Scope("team", "t", Limits(rpm=60)),), tokens=1, cost_micros=0,
        period=BudgetPeriod("2023-11", 0.0, 2e9),
    )
    admitted = 0
    for _ in range(50):
        admitted += isinstance(await counters.reserve(request, 1_700_000_000.0), Admitted)
    await counters.aclose()
    print(admitted)

asyncio.run(main())
"""


async def test_two_gateway_processes_share_one_limit(prefix: str, gateways: GatewayFactory) -> None:
    def run_both() -> list[int]:
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", GATEWAY_PROCESS, redis_url(), prefix],
                stdout=subprocess.PIPE,
                text=True,
            )
            for _ in range(2)
        ]
        return [int(proc.communicate(timeout=30)[0]) for proc in procs]

    admitted = await asyncio.to_thread(run_both)
    assert sum(admitted) == 60

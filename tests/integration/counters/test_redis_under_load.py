"""Budgets on Redis under load: a burst, a slow Redis, a full pool, a Redis too slow to answer.

Redis is reached through a loopback proxy that adds latency (never refusal), as a loaded or
distant Redis would. Each "gateway" is a FailOpenCounters over its own RedisCounters.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable

import pytest
from redis.asyncio import Redis

from corral.counters import AdmissionRequest, Admitted, BudgetPeriod, Limits, Scope
from corral.counters.failopen import FailOpenCounters
from corral.counters.outage import CountersState
from corral.counters.port import CountersBusy, CountersUnreachable
from corral.counters.redis import RedisCounters
from support.redis_keys import forget
from support.services import redis_host_port, redis_url
from support.tcp_proxy import CuttableProxy

pytestmark = pytest.mark.redis

MONTH = BudgetPeriod(key="2023-11", starts_at=1_698_796_800.0, resets_at=1_701_388_800.0)
BUDGET = 1000  # micro-dollars: $0.001
COST = 37  # 27 requests' worth
REQUEST = AdmissionRequest(
    scopes=(
        Scope("key", "k1", Limits(rpm=100_000)),
        Scope("team", "t1", Limits(monthly_budget_usd=BUDGET / 1e6)),
    ),
    tokens=21,
    cost_micros=COST,
    period=MONTH,
)

Fleet = Callable[..., FailOpenCounters]


@pytest.fixture
async def proxy() -> AsyncIterator[CuttableProxy]:
    running = CuttableProxy(*redis_host_port())
    await running.start()
    yield running
    await running.cut()


@pytest.fixture
async def fleet(proxy: CuttableProxy, prefix: str) -> AsyncIterator[Fleet]:
    """Makes gateways whose counters reach Redis through the proxy."""
    made: list[FailOpenCounters] = []

    def make(*, pool_size: int, pool_wait: float, timeout: float) -> FailOpenCounters:
        shared = RedisCounters.from_url(
            f"redis://127.0.0.1:{proxy.port}/0",
            prefix=prefix,
            pool_size=pool_size,
            pool_wait=pool_wait,
            timeout=timeout,
        )
        made.append(FailOpenCounters(shared, processes=2))
        return made[-1]

    yield make
    for counters in made:
        await counters.aclose()
    forget(prefix)


async def one_request(gateway: FailOpenCounters, now: float) -> int:
    """A request that uses all it reserved: its cost, or 0 when refused or answered 503."""
    try:
        decision = await gateway.reserve(REQUEST, now)
    except (CountersBusy, CountersUnreachable):
        return 0
    if not isinstance(decision, Admitted):
        return 0
    await asyncio.sleep(0.01)
    await gateway.settle(decision.reservation, REQUEST.tokens, COST, now)
    return COST


async def spent(prefix: str) -> int:
    admin = Redis.from_url(redis_url())
    try:
        raw = await admin.hget(f"{{{prefix}}}:b:team:t1:{MONTH.key}", "spent")
    finally:
        await admin.aclose()
    return int(raw or 0)


async def test_a_burst_through_a_slow_redis_stays_within_budget_and_is_no_outage(
    proxy: CuttableProxy, fleet: Fleet, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    proxy.latency = 0.02  # 40 ms a round trip, well below the 2 s timeout
    gateways = [fleet(pool_size=4, pool_wait=10.0, timeout=2.0) for _ in range(2)]
    with caplog.at_level(logging.WARNING, logger="corral.counters"):
        costs = await asyncio.gather(*(one_request(gateways[i % 2], 1e9) for i in range(200)))
    assert sum(costs) == await spent(prefix)
    assert sum(costs) == BUDGET // COST * COST  # every request's worth that fits, no more
    for gateway in gateways:
        assert gateway.transitions[CountersState.DEGRADED] == 0
        assert gateway.refusals == {"busy": 0, "failing": 0, "outage_budget": 0}
    assert not [r for r in caplog.records if "unavailable" in r.getMessage()]


async def test_a_full_pool_answers_busy_and_is_never_taken_for_an_outage(
    proxy: CuttableProxy, fleet: Fleet, caplog: pytest.LogCaptureFixture
) -> None:
    proxy.latency = 0.1
    gateway = fleet(pool_size=1, pool_wait=0.05, timeout=2.0)
    with caplog.at_level(logging.WARNING, logger="corral.counters"):
        for _ in range(4):  # over more than a second: long enough to count as an outage
            first = asyncio.ensure_future(one_request(gateway, 1e9))
            await asyncio.sleep(0.02)  # its round trip holds the only lane for 0.2 s
            costs = await asyncio.gather(*(one_request(gateway, 1e9) for _ in range(20)))
            assert await first == COST
            assert costs.count(0) == 20
    assert gateway.refusals["busy"] > 0
    assert gateway.state is CountersState.SHARED
    assert gateway.outages == 0
    assert not [r for r in caplog.records if "unavailable" in r.getMessage()]


async def test_a_redis_too_slow_to_answer_is_an_outage_that_never_overspends(
    proxy: CuttableProxy, fleet: Fleet, prefix: str
) -> None:
    gateways = [fleet(pool_size=4, pool_wait=1.0, timeout=0.1) for _ in range(2)]
    for gateway in gateways:  # the ledger's figure for the month: 500 of 1,000 spent
        await gateway.seed_spend("team:t1", MONTH.key, 500)
    proxy.latency = 0.3  # every call now times out (after Redis may have run it)
    costs: list[int] = []
    loop = asyncio.get_running_loop()
    end = loop.time() + 3.0
    while loop.time() < end:
        now = 1e9 + loop.time()
        costs += await asyncio.gather(*(one_request(g, now) for g in gateways for _ in range(5)))
        await asyncio.sleep(0.05)
    assert all(g.state is CountersState.DEGRADED for g in gateways)
    assert sum(costs) > 0  # admitted on the local shares...
    assert sum(costs) <= (BUDGET - 500) // 2 // COST * COST * 2  # ...and no more than them
    assert 500 + sum(costs) <= BUDGET

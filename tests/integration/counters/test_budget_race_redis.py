"""The budget race on Redis: 50 concurrent requests worth 5× the remaining budget, 5 gateways."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable

import pytest

from corral.counters import AdmissionRequest, Admitted, BudgetPeriod, Limits, Scope
from corral.counters.redis import RedisCounters

pytestmark = pytest.mark.redis

MONTH = BudgetPeriod(key="2023-11", starts_at=1_698_796_800.0, resets_at=1_701_388_800.0)
BUDGET = 10_000_000
REMAINING = 1_000_000
REQUESTS = 50
COST = 5 * REMAINING // REQUESTS
GATEWAYS = 5


async def one_request(gateway: RedisCounters, team: str, rng: random.Random) -> None:
    request = AdmissionRequest(
        scopes=(
            Scope("key", f"k{rng.randrange(5)}", Limits()),
            Scope("team", team, Limits(monthly_budget_usd=BUDGET / 1e6)),
        ),
        tokens=100,
        cost_micros=COST,
        period=MONTH,
    )
    decision = await gateway.reserve(request, 1e9)
    if isinstance(decision, Admitted):
        await asyncio.sleep(0)
        actual = COST if rng.random() < 0.5 else COST // 3
        await gateway.settle(decision.reservation, 100, actual, 1e9)


async def test_budget_race_never_overspends_across_gateways(
    gateways: Callable[[], RedisCounters],
) -> None:
    fleet = [gateways() for _ in range(GATEWAYS)]
    worst = -BUDGET
    for round_ in range(100):
        rng = random.Random(round_)
        team = f"racers-{round_}"
        await fleet[0].seed_spend(f"team:{team}", MONTH.key, BUDGET - REMAINING)
        await asyncio.gather(
            *(one_request(fleet[i % GATEWAYS], team, rng) for i in range(REQUESTS))
        )
        spend = await fleet[1].spend(f"team:{team}", MONTH.key)
        assert spend.held_micros == 0
        assert spend.spent_micros - BUDGET <= COST
        assert spend.spent_micros > BUDGET - REMAINING  # some requests did get in
        worst = max(worst, spend.spent_micros - BUDGET)
    assert worst <= 0

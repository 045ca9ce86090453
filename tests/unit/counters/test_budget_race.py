"""The budget race on LocalCounters: 50 concurrent requests worth 5× the remaining budget."""

from __future__ import annotations

import asyncio
import random

from corral.counters import (
    AdmissionRequest,
    Admitted,
    BudgetPeriod,
    Counters,
    Limits,
    LocalCounters,
    Scope,
)

MONTH = BudgetPeriod(key="2023-11", starts_at=1_698_796_800.0, resets_at=1_701_388_800.0)
BUDGET_USD = 10.0
BUDGET = 10_000_000
ALREADY_SPENT = 9_000_000
REMAINING = BUDGET - ALREADY_SPENT
REQUESTS = 50
COST = 5 * REMAINING // REQUESTS


async def one_request(counters: Counters, rng: random.Random, now: float) -> int:
    """Reserve, yield a few times (other requests interleave), settle; the cost admitted."""
    request = AdmissionRequest(
        scopes=(
            Scope("key", f"k{rng.randrange(5)}", Limits()),
            Scope("team", "racers", Limits(monthly_budget_usd=BUDGET_USD)),
        ),
        tokens=100,
        cost_micros=COST,
        period=MONTH,
    )
    for _ in range(rng.randrange(3)):
        await asyncio.sleep(0)
    decision = await counters.reserve(request, now)
    if not isinstance(decision, Admitted):
        return 0
    for _ in range(rng.randrange(3)):
        await asyncio.sleep(0)
    await counters.settle(decision.reservation, 100, COST if rng.random() < 0.5 else COST // 3, now)
    return COST


async def race(counters: Counters, seed: int) -> tuple[int, int]:
    """One round: (cost admitted by reservations, spend settled beyond the budget)."""
    rng = random.Random(seed)
    await counters.seed_spend("team:racers", MONTH.key, ALREADY_SPENT)
    admitted = await asyncio.gather(
        *(one_request(counters, random.Random(rng.random()), 1e9) for _ in range(REQUESTS))
    )
    spent = (await counters.spend("team:racers", MONTH.key)).spent_micros
    return sum(admitted), spent - BUDGET


async def test_budget_race_never_overspends_on_local_counters() -> None:
    worst = -BUDGET
    for round_ in range(100):
        counters = LocalCounters()
        admitted, overshoot = await race(counters, round_)
        assert admitted >= COST
        assert overshoot <= COST
        worst = max(worst, overshoot)
        assert (await counters.spend("team:racers", MONTH.key)).held_micros == 0
    assert worst <= 0  # admission checks spent + held + cost, so it never overshoots at all

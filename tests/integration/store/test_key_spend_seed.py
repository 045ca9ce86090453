"""A restart keeps each key's monthly spend: budgets are seeded from the ledger for keys too."""

from __future__ import annotations

import dataclasses

import pytest
from prometheus_client import CollectorRegistry

from corral.catalog import FakeEngineConfig, ModelSpec, Pricing
from corral.clock import FakeClock
from corral.composition.quotas import running_quotas, seed_and_reconcile
from corral.counters import LocalCounters
from corral.errors import RateLimited
from corral.gateway.calls import ApiCall, CallKind
from corral.gateway.policies.quotas import month_window
from corral.gateway.routes import LiveEndpoint, ModelRoute
from corral.principals import Principal, Role
from corral.settings import LimitSettings
from corral.store.records import Actor
from corral.store.usage import LimitSetting, SqlUsage
from support.usage import usage_event

NOW = 1_700_000_000.0  # 2023-11-14; the month began 2023-11-01
LAST_MONTH = 1_697_760_000.0  # 2023-10-20
MODEL = ModelSpec(
    name="m", engine=FakeEngineConfig(), pricing=Pricing(input_per_1m=1.0, output_per_1m=2.0)
)
# A 104-token prompt estimate + max_tokens 896 reserves 104 × $1 + 896 × $2 per 1M = $0.001896.
CALL = ApiCall(
    CallKind.CHAT,
    "m",
    False,
    False,
    896,
    {"messages": [{"role": "user", "content": "x" * 396}]},
    b"",
)
BASE = usage_event(
    request_id="",
    time=NOW - 3600,
    key_id="k1",
    team_id="t1",
    user_id="u1",
    endpoint="http://engine/v1",
    kind="chat",
    prompt_tokens=10,
    completion_tokens=10,
    time_to_first_token=None,
)


async def ledger_with_spend(url: str) -> SqlUsage:
    usage = SqlUsage(url)
    await usage.write_usage(
        [
            dataclasses.replace(BASE, request_id="a", cost_usd=0.30),
            dataclasses.replace(BASE, request_id="b", cost_usd=0.20, time=NOW - 86400 * 10),
            dataclasses.replace(BASE, request_id="c", cost_usd=5.00, time=LAST_MONTH),
            dataclasses.replace(BASE, request_id="d", cost_usd=0.05, key_id="k2", team_id=None),
        ]
    )
    return usage


async def test_start_up_seeds_every_keys_month_from_the_ledger(database: str) -> None:
    usage, counters, clock = await ledger_with_spend(database), LocalCounters(), FakeClock(NOW)
    try:
        await seed_and_reconcile(counters, usage, clock)
    finally:
        await usage.close()
    month = month_window(NOW).key
    assert (await counters.spend("key:k1", month)).spent_micros == 500_000  # not last month's
    assert (await counters.spend("key:k2", month)).spent_micros == 50_000
    assert (await counters.spend("team:t1", month)).spent_micros == 500_000


async def test_a_key_budget_spent_before_a_restart_still_refuses(database: str) -> None:
    usage, clock = await ledger_with_spend(database), FakeClock(NOW)
    try:
        # $0.50 spent this month; $0.501 leaves less than this request's $0.001896.
        await usage.set_limits(LimitSetting("key", "k1", monthly_budget_usd=0.501), Actor("t", NOW))
        await usage.set_limits(LimitSetting("key", "k2", monthly_budget_usd=0.052), Actor("t", NOW))
        route = ModelRoute(spec=MODEL, endpoints=[LiveEndpoint("http://127.0.0.1:9/v1")])
        async with running_quotas(LimitSettings(), usage, clock, CollectorRegistry()) as quotas:
            with pytest.raises(RateLimited) as refused:
                await quotas.admit(Principal("k1", Role.DEVELOPER, "t1"), CALL, route, "r1", [])
            assert refused.value.code == "budget_exceeded"
            assert "API key 'k1'" in refused.value.message
            # k2 spent $0.05 of $0.052: this request's $0.001896 still fits
            assert await quotas.admit(Principal("k2", Role.DEVELOPER), CALL, route, "r2", [])
    finally:
        await usage.close()

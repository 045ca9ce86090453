"""Budgets for a self-hosted model: admission reserves and settles at the effective rate."""

from __future__ import annotations

import pytest

from corral.catalog import DeploymentCost, FakeEngineConfig, ModelSpec, Pricing
from corral.clock import FakeClock
from corral.counters import Limits, LocalCounters
from corral.errors import RateLimited
from corral.gateway.calls import ApiCall, CallKind
from corral.gateway.policies.quotas import month_window
from corral.gateway.quotas import LimitBook, Quotas
from corral.gateway.routes import LiveEndpoint, ModelRoute
from corral.principals import Principal, Role

# $3.60 per replica-hour at 1,000 tokens/s per replica: $1 per 1M tokens, 1 micro-dollar a token.
SELF_HOSTED = ModelSpec(
    name="llama",
    engine=FakeEngineConfig(),
    pricing=Pricing(
        deployment=DeploymentCost(usd_per_hour=3.6, replicas=2, tokens_per_second=1000)
    ),
)
# "user" + 396 characters = 400 → 100 tokens, + 4 for the message: a 104-token prompt estimate;
# with max_tokens 896 a request reserves 1,000 tokens, so $0.001 (1,000 micro-dollars).
BODY = {"messages": [{"role": "user", "content": "x" * 396}]}
CALL = ApiCall(CallKind.CHAT, "llama", False, False, 896, BODY, b"")
WHO = Principal(key_id="k1", role=Role.DEVELOPER, team_id="t1", user_id="u1")


def quotas_with_team_budget(usd: float) -> tuple[Quotas, LocalCounters, FakeClock]:
    counters, clock = LocalCounters(), FakeClock()
    book = LimitBook(Limits(), Limits())
    book.replace({}, {"t1": Limits(monthly_budget_usd=usd)})
    return Quotas(counters, book, clock), counters, clock


async def test_a_team_budget_holds_self_hosted_requests_at_the_effective_rate() -> None:
    quotas, counters, clock = quotas_with_team_budget(0.0025)  # 2,500 micro-dollars
    route = ModelRoute(spec=SELF_HOSTED, endpoints=[LiveEndpoint("http://127.0.0.1:9/v1")])
    first = await quotas.admit(WHO, CALL, route, "r1", [])
    second = await quotas.admit(WHO, CALL, route, "r2", [])
    assert first is not None
    assert second is not None
    assert first.cost_micros == 1000
    month = month_window(clock.now()).key
    assert (await counters.spend("team:t1", month)).held_micros == 2000
    with pytest.raises(RateLimited) as refused:  # 2,000 held + 1,000 > 2,500
        await quotas.admit(WHO, CALL, route, "r3", [])
    assert refused.value.code == "budget_exceeded"
    # r1 used 104 + 396 = 500 tokens: it settles at 500 micro-dollars and frees the rest.
    await quotas.settle(first, route, 104, 396)
    spend = await counters.spend("team:t1", month)
    assert (spend.spent_micros, spend.held_micros) == (500, 1000)
    assert await quotas.admit(WHO, CALL, route, "r3", []) is not None  # 500 + 1000 + 1000


async def test_the_reservation_keeps_what_a_reconciler_needs_to_bill_it() -> None:
    quotas, _, clock = quotas_with_team_budget(1.0)
    route = ModelRoute(spec=SELF_HOSTED, endpoints=[LiveEndpoint("http://127.0.0.1:9/v1")])
    held = await quotas.admit(WHO, CALL, route, "r1", [])
    assert held is not None
    assert (held.request_id, held.model, held.prompt_tokens, held.tokens) == (
        "r1",
        "llama",
        104,
        1000,
    )
    assert (held.user_id, held.admitted_at) == ("u1", clock.now())
    assert (held.scope_id("key"), held.scope_id("team")) == ("k1", "t1")

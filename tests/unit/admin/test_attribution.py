"""Self-hosted cost attribution: hand-checked shares of a deployment's cost, and the reports."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from corral.admin.attribution import attribute, day_cost, day_model_tokens, share_of
from corral.catalog import DeploymentCost
from corral.gateway.metering import UsageEvent
from corral.store.usage_memory import InMemoryUsage
from support.usage import usage_event
from unit.admin.world import make_world

# $2.00 per replica-hour × 3 replicas = $6/hour, $144 per full day.
LLAMA = DeploymentCost(usd_per_hour=2.0, replicas=3, tokens_per_second=500)
DAY1 = datetime(2024, 3, 1, tzinfo=UTC).timestamp()
UNTIL = DAY1 + 86400 + 6 * 3600  # 2024-03-02 06:00: six hours of the second day, $36


def ts(day: int, hour: int) -> float:
    return datetime(2024, 3, day, hour, tzinfo=UTC).timestamp()


def row(day: str, model: str, team: str, prompt: int, completion: int, cost: float = 0.0) -> dict:
    return {
        "day": day,
        "model": model,
        "team": team,
        "requests": 1,
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "cost_usd": cost,
    }


ROWS = [
    row("2024-03-01", "gpt", "alpha", 1000, 500, cost=1.25),
    row("2024-03-01", "llama", "alpha", 200_000, 100_000),  # 300k of 400k tokens that day
    row("2024-03-01", "llama", "beta", 60_000, 40_000),  # 100k of 400k
    row("2024-03-02", "llama", "alpha", 40, 10),  # 50 of 200 tokens
    row("2024-03-02", "llama", "beta", 100, 50),  # 150 of 200
]


def test_a_share_is_the_period_cost_times_the_token_share() -> None:
    assert share_of(144.0, 300_000, 400_000) == pytest.approx(108.0)
    assert share_of(144.0, 0, 400_000) == 0.0
    assert share_of(144.0, 5, 0) == 0.0


def test_a_day_costs_only_its_hours_inside_the_window() -> None:
    assert day_cost(LLAMA, "2024-03-01", DAY1, UNTIL) == pytest.approx(144.0)
    assert day_cost(LLAMA, "2024-03-02", DAY1, UNTIL) == pytest.approx(36.0)
    assert day_cost(LLAMA, "2024-03-01", ts(1, 12), UNTIL) == pytest.approx(72.0)
    assert day_cost(LLAMA, "2024-03-05", DAY1, UNTIL) == 0.0


def test_teams_pay_their_token_share_of_each_day() -> None:
    totals = day_model_tokens(ROWS)
    assert totals[("2024-03-01", "llama")] == 400_000
    rows = attribute(ROWS, totals, {"llama": LLAMA}, groups=["team"], since=DAY1, until=UNTIL)
    by = {(r["team"], r["cost_basis"]): r for r in rows}
    # alpha: 144 × 300k/400k = 108 on day 1, 36 × 50/200 = 9 on day 2
    assert by[("alpha", "attributed")]["cost_usd"] == pytest.approx(117.0)
    # beta: 144 × 100k/400k = 36, 36 × 150/200 = 27
    assert by[("beta", "attributed")]["cost_usd"] == pytest.approx(63.0)
    assert by[("alpha", "list")]["cost_usd"] == pytest.approx(1.25)
    assert by[("alpha", "attributed")]["prompt_tokens"] == 200_040
    assert by[("alpha", "attributed")]["requests"] == 2
    assert len(rows) == 3


def test_all_of_a_used_days_cost_is_attributed() -> None:
    totals = day_model_tokens(ROWS)
    rows = attribute(
        ROWS, totals, {"llama": LLAMA}, groups=["day", "model"], since=DAY1, until=UNTIL
    )
    assert [(r["day"], r["model"], r["cost_basis"], r["cost_usd"]) for r in rows] == [
        ("2024-03-01", "gpt", "list", 1.25),
        ("2024-03-01", "llama", "attributed", 144.0),
        ("2024-03-02", "llama", "attributed", 36.0),
    ]


def test_one_teams_view_still_shares_by_every_teams_tokens() -> None:
    alpha_only = [r for r in ROWS if r["team"] == "alpha"]
    rows = attribute(
        alpha_only, day_model_tokens(ROWS), {"llama": LLAMA}, groups=[], since=DAY1, until=UNTIL
    )
    assert [(r["cost_basis"], r["cost_usd"]) for r in rows] == [
        ("attributed", 117.0),
        ("list", 1.25),
    ]


def event(request_id: str, at: float, team: str, model: str, tokens: int) -> UsageEvent:
    return usage_event(
        request_id=request_id,
        time=at,
        key_id="k-" + request_id,
        team_id=team,
        model=model,
        endpoint="http://engine/v1",
        kind="chat",
        prompt_tokens=tokens,
        completion_tokens=0,
        cost_usd=0.001,  # what the ledger charged at the effective rate; reports attribute
        time_to_first_token=None,
    )


async def test_the_usage_api_reports_attributed_cost_with_its_basis() -> None:
    ledger = InMemoryUsage()
    world = await make_world(usage_ledger=ledger, deployment_costs={"llama": LLAMA})
    alpha, beta = world.teams["alpha"].id, world.teams["beta"].id
    await ledger.write_usage(
        [
            event("a1", ts(1, 9), alpha, "llama", 300_000),
            event("b1", ts(1, 10), beta, "llama", 100_000),
            event("a2", ts(2, 1), alpha, "llama", 50),
            event("b2", ts(2, 2), beta, "llama", 150),
        ]
    )
    query = f"/usage?since={DAY1:.0f}&until={UNTIL:.0f}&group_by=team"
    everyone = (await world.call("P", "GET", query)).json()["data"]
    assert {(r["team"], r["cost_basis"]): r["cost_usd"] for r in everyone} == {
        (alpha, "attributed"): pytest.approx(117.0),
        (beta, "attributed"): pytest.approx(63.0),
    }
    own = (await world.call("T", "GET", query)).json()["data"]
    assert [(r["team"], r["cost_basis"], r["cost_usd"]) for r in own] == [
        (alpha, "attributed", pytest.approx(117.0))
    ]
    csv = (await world.call("T", "GET", query.replace("/usage", "/usage.csv"))).text
    assert (
        csv.splitlines()[0] == "team,requests,prompt_tokens,completion_tokens,cost_usd,cost_basis"
    )
    assert csv.splitlines()[1].endswith(",117.0,attributed")


async def test_without_self_hosted_models_every_row_is_list_priced() -> None:
    ledger = InMemoryUsage()
    world = await make_world(usage_ledger=ledger)
    await ledger.write_usage([event("a1", ts(1, 9), world.teams["alpha"].id, "gpt", 10)])
    rows = (await world.call("P", "GET", f"/usage?since={DAY1:.0f}&group_by=model")).json()
    assert [(r["model"], r["cost_basis"], r["cost_usd"]) for r in rows["data"]] == [
        ("gpt", "list", 0.001)
    ]

"""Admin operations on money: usage reports (JSON, CSV), limits and budgets per team."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from corral.admin.attribution import attribute, day_model_tokens
from corral.admin.audit import parse_moment
from corral.admin.operations import AdminContext, Call, Operation
from corral.admin.policy import Action, Scope
from corral.admin.teams import find_team
from corral.errors import InvalidRequest, PermissionDenied
from corral.principals import Role
from corral.store.usage import GROUPS, LimitSetting, UsageFilter, UsageLedger


class UsageQuery(BaseModel):
    """Which usage to report and how to group it."""

    model_config = ConfigDict(extra="forbid")

    since: str = Field("30d", description="Start: 30d, 24h, Unix seconds or ISO 8601.")
    until: str | None = Field(None, description="End (exclusive); default now.")
    group_by: str = Field("day,model", description=f"Comma-separated: {', '.join(GROUPS)}.")
    team: str | None = Field(None, description="Team id or name (team-admins: their own).")
    key: str | None = Field(None, description="Only this key id.")
    model: str | None = Field(None, description="Only this model.")


class UsageRow(BaseModel):
    day: str | None = None
    model: str | None = None
    team: str | None = None
    key: str | None = None
    user: str | None = None
    requests: int
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float
    cost_basis: Literal["list", "attributed"] = Field(
        "list",
        description="list: the model's list prices; attributed: a share of a self-hosted "
        "deployment's running cost by token share per day.",
    )


class UsageReport(BaseModel):
    data: list[UsageRow]


class LimitsIn(BaseModel):
    """Limits and budget of a team. POST replaces them all (an unset field removes that limit);
    PATCH changes only the fields given (null removes that one)."""

    model_config = ConfigDict(extra="forbid")

    rpm: int | None = Field(None, ge=1, description="Requests per minute.")
    tpm: int | None = Field(None, ge=1, description="Tokens per minute.")
    max_concurrent: int | None = Field(None, ge=1, description="Requests in flight at once.")
    monthly_budget_usd: float | None = Field(None, ge=0, description="USD per calendar month.")


class TeamRef(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Budget(BaseModel):
    monthly_usd: float | None
    spent_usd: float
    resets_at: str


class LimitsOut(BaseModel):
    team: str | None
    budget: Budget
    limits: LimitsIn


def _usage(ctx: AdminContext) -> UsageLedger:
    if ctx.usage is None:
        raise InvalidRequest("usage reporting is not enabled on this server")
    return ctx.usage


async def _filter(ctx: AdminContext, call: Call[UsageQuery]) -> UsageFilter:
    q, principal = call.input, call.principal
    team_id = (await find_team(ctx, q.team)).id if q.team else None
    if principal.role is not Role.PLATFORM_ADMIN:
        if team_id not in (None, principal.team_id):
            raise PermissionDenied("you may only see your own team's usage")
        team_id = principal.team_id
    user_id = principal.user_id if principal.role is Role.DEVELOPER else None
    call.authorize(Action.USAGE_READ, Scope(team_id, user_id=user_id))
    key_ids = None
    if principal.role is Role.DEVELOPER and user_id is None:
        key_ids = frozenset({principal.key_id})  # a team's service key sees only itself
    if q.key is not None:
        key_ids = frozenset({q.key}) if key_ids is None or q.key in key_ids else frozenset()
    return UsageFilter(
        since=parse_moment(q.since, call.now, "since"),
        until=None if q.until is None else parse_moment(q.until, call.now, "until"),
        team_id=team_id,
        key_ids=key_ids,
        user_id=user_id,
        model=q.model,
    )


def _groups(text: str) -> list[str]:
    groups = [g.strip() for g in text.split(",") if g.strip()]
    unknown = [g for g in groups if g not in GROUPS]
    if unknown:
        raise InvalidRequest(
            f"group_by: unknown {', '.join(unknown)}; choose from {', '.join(GROUPS)}",
            param="group_by",
        )
    return groups


async def _costed(ctx: AdminContext, call: Call[UsageQuery]) -> list[dict[str, Any]]:
    """The report's rows, self-hosted models at their attributed cost (see attribution)."""
    usage, where = _usage(ctx), await _filter(ctx, call)
    groups = _groups(call.input.group_by)
    if not ctx.deployment_costs:
        return [{**row, "cost_basis": "list"} for row in await usage.report(where, groups)]
    until = where.until if where.until is not None else call.now
    fine = await usage.report(where, [*groups, *(g for g in ("day", "model") if g not in groups)])
    everyone = UsageFilter(since=where.since, until=until, model=where.model)
    all_tokens = day_model_tokens(await usage.report(everyone, ["day", "model"]))
    return attribute(
        fine, all_tokens, ctx.deployment_costs, groups=groups, since=where.since, until=until
    )


async def usage_report(ctx: AdminContext, call: Call[UsageQuery]) -> UsageReport:
    return UsageReport(data=[UsageRow(**row) for row in await _costed(ctx, call)])


async def usage_csv(ctx: AdminContext, call: Call[UsageQuery]) -> Response:
    groups = _groups(call.input.group_by)
    rows = await _costed(ctx, call)
    out = io.StringIO()
    fields = [*groups, "requests", "prompt_tokens", "completion_tokens", "cost_usd", "cost_basis"]
    writer = csv.DictWriter(out, fieldnames=fields, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return Response(
        out.getvalue(),
        media_type="text/csv",
        headers={"Content-Disposition": 'attachment; filename="corral-usage.csv"'},
    )


async def _limits_out(ctx: AdminContext, principal_team: str | None, now: float) -> LimitsOut:
    usage = _usage(ctx)
    start = datetime.fromtimestamp(now, UTC).replace(day=1, hour=0, minute=0, second=0)
    reset = start.replace(month=start.month % 12 + 1, year=start.year + start.month // 12)
    setting = await usage.limits_of("team", principal_team) if principal_team else None
    spent = 0.0
    if principal_team:
        totals = await usage.report(
            UsageFilter(since=start.timestamp(), team_id=principal_team), []
        )
        spent = float(totals[0]["cost_usd"]) if totals else 0.0
    limits = LimitsIn(
        rpm=setting.rpm if setting else None,
        tpm=setting.tpm if setting else None,
        max_concurrent=setting.max_concurrent if setting else None,
        monthly_budget_usd=setting.monthly_budget_usd if setting else None,
    )
    return LimitsOut(
        team=principal_team,
        budget=Budget(
            monthly_usd=limits.monthly_budget_usd,
            spent_usd=round(spent, 6),
            resets_at=reset.strftime("%Y-%m-%dT%H:%M:%SZ"),
        ),
        limits=limits,
    )


async def my_limits(ctx: AdminContext, call: Call[TeamRef]) -> LimitsOut:
    call.authorize(Action.LIMITS_READ, Scope(call.principal.team_id))
    return await _limits_out(ctx, call.principal.team_id, call.now)


async def team_limits(ctx: AdminContext, call: Call[TeamRef]) -> LimitsOut:
    team = await find_team(ctx, call.path["team"])
    call.authorize(Action.LIMITS_READ, Scope(team.id))
    return await _limits_out(ctx, team.id, call.now)


async def set_team_limits(ctx: AdminContext, call: Call[LimitsIn]) -> LimitsOut:
    team = await find_team(ctx, call.path["team"])
    call.authorize(Action.LIMITS_UPDATE, Scope(team.id))
    return await _store_limits(ctx, call, team.id, call.input.model_dump())


async def patch_team_limits(ctx: AdminContext, call: Call[LimitsIn]) -> LimitsOut:
    team = await find_team(ctx, call.path["team"])
    call.authorize(Action.LIMITS_UPDATE, Scope(team.id))
    current = await _usage(ctx).limits_of("team", team.id)
    values = (
        LimitsIn() if current is None else LimitsIn.model_validate(current, from_attributes=True)
    )
    changed = call.input.model_dump(include=call.input.model_fields_set)
    return await _store_limits(ctx, call, team.id, {**values.model_dump(), **changed})


async def _store_limits(
    ctx: AdminContext, call: Call[LimitsIn], team_id: str, values: dict[str, Any]
) -> LimitsOut:
    await _usage(ctx).set_limits(LimitSetting("team", team_id, **values), call.actor)
    if ctx.limits_changed is not None:  # this process applies them now, not at its next reload
        await ctx.limits_changed()
    return await _limits_out(ctx, team_id, call.now)


OPERATIONS: list[Operation[Any]] = [
    Operation(
        "GET",
        "/usage",
        Action.USAGE_READ,
        "Usage by day, model, team, key or user",
        UsageQuery,
        UsageReport,
        usage_report,
    ),
    Operation(
        "GET",
        "/usage.csv",
        Action.USAGE_READ,
        "The same usage report as CSV",
        UsageQuery,
        None,
        usage_csv,
        media_type="text/csv",
    ),
    Operation(
        "GET",
        "/limits/me",
        Action.ME_READ,
        "Your team's limits, budget and spend",
        TeamRef,
        LimitsOut,
        my_limits,
    ),
    Operation(
        "GET",
        "/teams/{team}/limits",
        Action.LIMITS_READ,
        "A team's limits and budget",
        TeamRef,
        LimitsOut,
        team_limits,
    ),
    Operation(
        "POST",
        "/teams/{team}/limits",
        Action.LIMITS_UPDATE,
        "Set a team's limits and monthly budget (fields left out are removed)",
        LimitsIn,
        LimitsOut,
        set_team_limits,
    ),
    Operation(
        "PATCH",
        "/teams/{team}/limits",
        Action.LIMITS_UPDATE,
        "Change some of a team's limits (only the fields given; null removes one)",
        LimitsIn,
        LimitsOut,
        patch_team_limits,
    ),
]

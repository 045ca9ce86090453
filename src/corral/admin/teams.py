"""Admin operations on teams: create, list, show, delete."""

from __future__ import annotations

from typing import Any

from corral.admin.operations import AdminContext, Call, Operation, askable, quoted
from corral.admin.paging import listing, page_of
from corral.admin.platform_admins import keep_a_platform_admin
from corral.admin.policy import ANYWHERE, Action, Scope
from corral.admin.schemas import (
    Empty,
    TeamCreate,
    TeamDelete,
    TeamList,
    TeamOut,
    TeamQuery,
    team_out,
)
from corral.errors import NotFound
from corral.principals import Role
from corral.store.records import Team


async def find_team(ctx: AdminContext, ref: str, param: str = "team") -> Team:
    """The live team with this id or name, or 404 naming ``param``."""
    team = await ctx.store.get_team(ref) if askable(ref) else None
    if team is None:
        raise NotFound(f"no team {quoted(ref)}; `corral team list` shows the teams", param=param)
    return team


async def create_team(ctx: AdminContext, call: Call[TeamCreate]) -> TeamOut:
    call.authorize(Action.TEAM_CREATE, ANYWHERE)
    body = call.input
    return team_out(await ctx.store.create_team(body.name, body.description, actor=call.actor))


async def list_teams(ctx: AdminContext, call: Call[TeamQuery]) -> TeamList:
    if call.principal.role is Role.PLATFORM_ADMIN:
        teams = await ctx.store.list_teams(listing(call.input))
        shown, after = page_of(teams, call.input, lambda t: (t.name, t.id))
        data = [team_out(t) for t in shown]
        return TeamList(data=data, has_more=after is not None, next_after=after)
    call.authorize(Action.TEAM_LIST, Scope(call.principal.team_id))
    own = await ctx.store.get_team(call.principal.team_id or "")
    return TeamList(data=[] if own is None else [team_out(own)])


async def show_team(ctx: AdminContext, call: Call[Empty]) -> TeamOut:
    team = await find_team(ctx, call.path["team"])
    call.authorize(Action.TEAM_READ, Scope(team.id))
    return team_out(team)


async def delete_team(ctx: AdminContext, call: Call[TeamDelete]) -> TeamOut:
    team = await find_team(ctx, call.path["team"])
    call.authorize(Action.TEAM_DELETE, Scope(team.id))
    if call.input.force:
        await keep_a_platform_admin(ctx, await ctx.store.list_users(team.id))
    return team_out(await ctx.store.delete_team(team.id, actor=call.actor, force=call.input.force))


OPERATIONS: list[Operation[Any]] = [
    Operation(
        "POST", "/teams", Action.TEAM_CREATE, "Create a team", TeamCreate, TeamOut, create_team, 201
    ),
    Operation("GET", "/teams", Action.TEAM_LIST, "List teams", TeamQuery, TeamList, list_teams),
    Operation("GET", "/teams/{team}", Action.TEAM_READ, "Show a team", Empty, TeamOut, show_team),
    Operation(
        "DELETE",
        "/teams/{team}",
        Action.TEAM_DELETE,
        "Delete a team",
        TeamDelete,
        TeamOut,
        delete_team,
    ),
]

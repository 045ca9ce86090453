"""Admin operations on teams: create, list, show, update (the maximum key lifetime), delete."""

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
    TeamUpdate,
    team_out,
)
from corral.errors import NotFound, PermissionDenied
from corral.principals import Role
from corral.store.records import KEEP, Team, TeamChange


async def find_team(ctx: AdminContext, ref: str, param: str = "team") -> Team:
    """The live team with this id or name, or 404 naming ``param``."""
    team = await ctx.store.get_team(ref) if askable(ref) else None
    if team is None:
        raise NotFound(f"no team {quoted(ref)}; `corral team list` shows the teams", param=param)
    return team


async def create_team(ctx: AdminContext, call: Call[TeamCreate]) -> TeamOut:
    call.authorize(Action.TEAM_CREATE, ANYWHERE)
    body = call.input
    team = await ctx.store.create_team(
        body.name, body.description, actor=call.actor, max_key_lifetime=body.max_key_lifetime
    )
    return team_out(team)


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


async def update_team(ctx: AdminContext, call: Call[TeamUpdate]) -> TeamOut:
    team = await find_team(ctx, call.path["team"])
    call.authorize(Action.TEAM_UPDATE, Scope(team.id))
    body, given = call.input, call.input.model_fields_set
    if "max_key_lifetime" in given and call.principal.role is not Role.PLATFORM_ADMIN:
        _within_team_maximum(team.max_key_lifetime, body.max_key_lifetime)
    change = TeamChange(
        description=body.description if "description" in given else KEEP,
        max_key_lifetime=body.max_key_lifetime if "max_key_lifetime" in given else KEEP,
    )
    return team_out(await ctx.store.update_team(team.id, actor=call.actor, change=change))


def _within_team_maximum(current: int | None, asked: int | None) -> None:
    """A team's maximum key lifetime is a ceiling below a platform-admin: others only lower it."""
    if current is not None and (asked is None or asked > current):
        raise PermissionDenied(
            f"this team's keys may live at most {lifetime_text(current)}; only a platform-admin "
            "may raise or remove that maximum (you may lower it)",
            param="max_key_lifetime",
        )


def lifetime_text(seconds: int) -> str:
    """``seconds`` as the CLI writes a duration (``90d``, ``12h``, ``30m``, ``90s``)."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


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
        "PATCH",
        "/teams/{team}",
        Action.TEAM_UPDATE,
        "Change a team's description or maximum key lifetime (only the fields given)",
        TeamUpdate,
        TeamOut,
        update_team,
    ),
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

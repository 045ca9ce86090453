"""Admin operations on users (add, list, show, change role or name, remove) and on the caller."""

from __future__ import annotations

from typing import Any

from corral.admin.operations import AdminContext, Call, Operation, askable, quoted
from corral.admin.paging import listing, page_of
from corral.admin.platform_admins import keep_a_platform_admin
from corral.admin.policy import Action, Scope
from corral.admin.schemas import (
    Empty,
    Me,
    UserCreate,
    UserList,
    UserOut,
    UserQuery,
    UserUpdate,
    moment,
    team_out,
    user_out,
)
from corral.admin.teams import find_team
from corral.errors import InvalidRequest, NotFound
from corral.principals import Role
from corral.store.records import User


async def find_user(ctx: AdminContext, ref: str, param: str = "user") -> User:
    """The live user with this id or e-mail, or 404 naming ``param``."""
    user = await ctx.store.get_user(ref) if askable(ref) else None
    if user is None:
        raise NotFound(f"no user {quoted(ref)}; `corral user list` shows the users", param=param)
    return user


def user_scope(user: User) -> Scope:
    """The scope of acting on ``user``."""
    return Scope(user.team_id, user.id, user.role)


async def me(ctx: AdminContext, call: Call[Empty]) -> Me:
    p = call.principal
    team = await ctx.store.get_team(p.team_id) if p.team_id else None
    user = await ctx.store.get_user(p.user_id) if p.user_id else None
    return Me(
        key_id=p.key_id,
        role=p.role,
        team=None if team is None else team_out(team),
        user=None if user is None else user_out(user),
        allowed_models=None if p.allowed_models is None else sorted(p.allowed_models),
        expires_at=moment(p.expires_at),
    )


async def create_user(ctx: AdminContext, call: Call[UserCreate]) -> UserOut:
    body = call.input
    team_ref = body.team or call.principal.team_id
    if team_ref is None:
        raise InvalidRequest("your key has no team; name the user's team", param="team")
    team = await find_team(ctx, team_ref)
    call.authorize(Action.USER_CREATE, Scope(team.id, grants=body.role))
    user = await ctx.store.create_user(team.id, body.name, body.email, body.role, actor=call.actor)
    return user_out(user)


async def list_users(ctx: AdminContext, call: Call[UserQuery]) -> UserList:
    p = call.principal
    if call.input.team is not None:
        team_id: str | None = (await find_team(ctx, call.input.team)).id
    else:
        team_id = None if p.role is Role.PLATFORM_ADMIN else p.team_id
    only = p.user_id if p.role is Role.DEVELOPER else None
    call.authorize(Action.USER_LIST, Scope(team_id, only))
    if only is not None:  # a developer sees themself only: no page to read
        me = await ctx.store.get_user(only)
        mine = [me] if me is not None and _listed(me, team_id, call.input) else []
        return UserList(data=[user_out(u) for u in mine])
    users = await ctx.store.list_users(team_id, listing(call.input))
    shown, after = page_of(users, call.input, lambda u: (u.name, u.id))
    return UserList(data=[user_out(u) for u in shown], has_more=after is not None, next_after=after)


def _listed(user: User, team_id: str | None, query: UserQuery) -> bool:
    """Whether ``user`` belongs on the first page ``query`` asks for (a one-record list)."""
    prefix = query.name_prefix
    in_team = team_id in (None, user.team_id)
    return in_team and query.after is None and (prefix is None or user.name.startswith(prefix))


async def show_user(ctx: AdminContext, call: Call[Empty]) -> UserOut:
    user = await find_user(ctx, call.path["user"])
    call.authorize(Action.USER_READ, user_scope(user))
    return user_out(user)


async def update_user(ctx: AdminContext, call: Call[UserUpdate]) -> UserOut:
    body = call.input
    if body.role is None and body.name is None:
        raise InvalidRequest("nothing to change; give role and/or name", param="role")
    user = await find_user(ctx, call.path["user"])
    scope = user_scope(user)
    call.authorize(Action.USER_UPDATE, Scope(scope.team_id, scope.user_id, scope.role, body.role))
    if body.role not in (None, Role.PLATFORM_ADMIN):
        await keep_a_platform_admin(ctx, [user])
    changed = await ctx.store.update_user(user.id, actor=call.actor, role=body.role, name=body.name)
    return user_out(changed)


async def delete_user(ctx: AdminContext, call: Call[Empty]) -> UserOut:
    user = await find_user(ctx, call.path["user"])
    call.authorize(Action.USER_DELETE, user_scope(user))
    await keep_a_platform_admin(ctx, [user])
    return user_out(await ctx.store.delete_user(user.id, actor=call.actor))


OPERATIONS: list[Operation[Any]] = [
    Operation("GET", "/me", Action.ME_READ, "Who the calling key belongs to", Empty, Me, me),
    Operation(
        "POST", "/users", Action.USER_CREATE, "Add a user", UserCreate, UserOut, create_user, 201
    ),
    Operation("GET", "/users", Action.USER_LIST, "List users", UserQuery, UserList, list_users),
    Operation("GET", "/users/{user}", Action.USER_READ, "Show a user", Empty, UserOut, show_user),
    Operation(
        "PATCH",
        "/users/{user}",
        Action.USER_UPDATE,
        "Change a user's role or name",
        UserUpdate,
        UserOut,
        update_user,
    ),
    Operation(
        "DELETE",
        "/users/{user}",
        Action.USER_DELETE,
        "Remove a user and revoke their keys",
        Empty,
        UserOut,
        delete_user,
    ),
]

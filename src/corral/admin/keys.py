"""Admin operations on API keys: create (the secret shown once), list, show, revoke, rotate."""

from __future__ import annotations

from datetime import UTC
from typing import Any

from corral.admin.operations import AdminContext, Call, Operation, askable, quoted
from corral.admin.paging import listing, page_of
from corral.admin.policy import Action, Scope, Subject, decide
from corral.admin.schemas import (
    Empty,
    KeyCreate,
    KeyCreated,
    KeyList,
    KeyOut,
    KeyQuery,
    KeyRotate,
    KeyRotated,
    key_created,
    key_out,
)
from corral.admin.teams import find_team, lifetime_text
from corral.admin.users import find_user, user_scope
from corral.errors import InvalidRequest, NotFound, PermissionDenied
from corral.principals import SESSION_KEY_NAME, Principal, Role, display_key, new_api_key
from corral.store.records import ApiKey, KeyMaterial, KeySpec, Team, iso, sooner


async def find_key(ctx: AdminContext, key_id: str) -> ApiKey:
    """The key with this id, or 404."""
    key = await ctx.store.get_key(key_id) if askable(key_id, 64) else None
    if key is None:
        raise NotFound(f"no key with id {quoted(key_id)}; `corral key list` shows ids", param="key")
    return key


async def key_scope(ctx: AdminContext, key: ApiKey) -> Scope:
    """The scope of acting on ``key``: its team, its owner and the owner's role."""
    owner = await ctx.store.get_user(key.user_id) if key.user_id else None
    return Scope(key.team_id, key.user_id, None if owner is None else owner.role)


async def create_key(ctx: AdminContext, call: Call[KeyCreate]) -> KeyCreated:
    body, p = call.input, call.principal
    if body.expires_at is not None and body.expires_in is not None:
        raise InvalidRequest("give expires_at or expires_in, not both", param="expires_in")
    if body.service and body.user is not None:
        raise InvalidRequest("a service key has no user; drop user or service", param="service")
    team: Team | None
    if body.service:
        team = await find_team(ctx, body.team or p.team_id or "")
        spec_team, owner = team.id, None
        call.authorize(Action.KEY_CREATE, Scope(team.id))
    else:
        if body.user is None and p.user_id is None:
            raise InvalidRequest(
                "your key has no user; name the key's user or ask for a service key", param="user"
            )
        owner = await find_user(ctx, body.user or p.user_id or "")
        if body.team is not None and (await find_team(ctx, body.team)).id != owner.team_id:
            raise InvalidRequest("that user is not in that team", param="team")
        spec_team = owner.team_id
        call.authorize(Action.KEY_CREATE, user_scope(owner))
        team = await ctx.store.get_team(spec_team)
    spec = KeySpec(
        team_id=spec_team,
        user_id=None if owner is None else owner.id,
        name=body.name,
        allowed_models=_models(ctx, p, body.allowed_models),
        expires_at=_lifetime(p, team, body, call.now),
    )
    secret = new_api_key()
    material = KeyMaterial(ctx.keys.hash(secret), display_key(secret))
    key = await ctx.store.create_key(material, spec, actor=call.actor)
    return key_created(key, secret, call.now)


async def list_keys(ctx: AdminContext, call: Call[KeyQuery]) -> KeyList:
    q, p = call.input, call.principal
    if q.user is not None:
        scope = user_scope(await find_user(ctx, q.user))
    elif q.team is not None:
        scope = Scope((await find_team(ctx, q.team)).id)
    elif p.role is Role.PLATFORM_ADMIN:
        scope = Scope()
    elif p.role is Role.TEAM_ADMIN:
        scope = Scope(p.team_id)
    else:
        scope = Scope(p.team_id, p.user_id, p.role)
    call.authorize(Action.KEY_LIST, scope)
    keys = await ctx.store.list_keys(
        team_id=scope.team_id,
        user_id=scope.user_id,
        include_inactive=q.include_inactive,
        now=call.now,
        state=q.state,
        listing=listing(q),
    )
    shown, after = page_of(keys, q, lambda k: (k.created_at, k.id))
    if p.role is not Role.PLATFORM_ADMIN:  # after paging: the cursor follows the store's order
        shown = await _readable(ctx, p, shown)
    data = [key_out(k, call.now) for k in shown]
    return KeyList(data=data, has_more=after is not None, next_after=after)


async def _readable(ctx: AdminContext, p: Principal, keys: list[ApiKey]) -> list[ApiKey]:
    """The keys ``p`` could also read one by one: a list shows no more than direct reads."""
    owners = {u.id: u for u in await ctx.store.list_users(p.team_id)} if p.team_id else {}
    subject = Subject.of(p)
    readable = []
    for key in keys:
        owner = owners.get(key.user_id) if key.user_id else None
        scope = Scope(key.team_id, key.user_id, None if owner is None else owner.role)
        if decide(subject, Action.KEY_READ, scope).allowed:
            readable.append(key)
    return readable


async def show_key(ctx: AdminContext, call: Call[Empty]) -> KeyOut:
    key = await find_key(ctx, call.path["key"])
    call.authorize(Action.KEY_READ, await key_scope(ctx, key))
    return key_out(key, call.now)


async def revoke_key(ctx: AdminContext, call: Call[Empty]) -> KeyOut:
    key = await find_key(ctx, call.path["key"])
    call.authorize(Action.KEY_REVOKE, await key_scope(ctx, key))
    revoked = await ctx.store.revoke_key(key.id, actor=call.actor)
    await _end_sessions_of(ctx, revoked, call)
    return key_out(revoked, call.now)


async def _end_sessions_of(ctx: AdminContext, key: ApiKey, call: Call[Any]) -> None:
    """Revoke the portal session keys that ``key`` signed in with: its sessions end with it."""
    live = await ctx.store.list_keys(
        team_id=key.team_id, user_id=key.user_id, include_inactive=False, now=call.now
    )
    for session in live:
        if session.created_by == key.id and session.name == SESSION_KEY_NAME:
            await ctx.store.revoke_key(session.id, actor=call.actor)


async def rotate_key(ctx: AdminContext, call: Call[KeyRotate]) -> KeyRotated:
    key = await find_key(ctx, call.path["key"])
    call.authorize(Action.KEY_ROTATE, await key_scope(ctx, key))
    secret = new_api_key()
    material = KeyMaterial(ctx.keys.hash(secret), display_key(secret))
    grace = call.input.grace_seconds
    team = await ctx.store.get_team(key.team_id)
    team_max = None if team is None else team.max_key_lifetime
    old, new = await ctx.store.rotate_key(
        key.id,
        material,
        actor=call.actor,
        grace_until=call.now + grace if grace else None,
        expires_at=None if team_max is None else call.now + team_max,  # a new key, a new term
    )
    return KeyRotated(old=key_out(old, call.now), new=key_created(new, secret, call.now))


def _models(ctx: AdminContext, caller: Principal, asked: list[str] | None) -> frozenset[str] | None:
    """The new key's allowlist: what was asked, never more than the calling key may use."""
    models = None if asked is None else frozenset(asked)
    if ctx.known_models is not None and models is not None:
        unknown = sorted(models - set(ctx.known_models()))
        if unknown:
            raise InvalidRequest(
                f"unknown model(s): {', '.join(unknown)[:300]}", param="allowed_models"
            )
    if caller.allowed_models is None:
        return models
    if models is None:
        return caller.allowed_models
    if not models <= caller.allowed_models:
        raise PermissionDenied(
            "a key may only grant models that the calling key may use itself",
            param="allowed_models",
        )
    return models


def _lifetime(caller: Principal, team: Team | None, body: KeyCreate, now: float) -> float | None:
    """The new key's expiry: as asked, within its team's maximum lifetime and its creator key's
    expiry; with none asked, the sooner of those two (or none). A portal session's key is cut
    to the team's maximum instead: the sign-in then ends sooner, rather than failing."""
    asked = _expiry(body, now)
    longest = None if team is None else team.max_key_lifetime
    if asked is None:
        return sooner(caller.expires_at, None if longest is None else now + longest)
    if body.name == SESSION_KEY_NAME and longest is not None:
        asked = min(asked, now + longest)
    if team is not None and longest is not None and asked > now + longest:
        raise InvalidRequest(
            f"team {team.name!r} lets a key live at most {lifetime_text(longest)} "
            f"({longest} seconds); ask for a shorter expiry (expires_in at most {longest}) or "
            "leave it out to get the longest allowed",
            param="expires_in" if body.expires_in is not None else "expires_at",
        )
    return _within_lifetime(caller, asked)


def _within_lifetime(caller: Principal, expires_at: float | None) -> float | None:
    """A key never outlives the key that creates it: no expiry asked means the caller's."""
    ceiling = caller.expires_at
    if ceiling is None:
        return expires_at
    if expires_at is None:
        return ceiling
    if expires_at > ceiling:
        raise PermissionDenied(
            f"a key may not outlive the key that creates it (yours expires {iso(ceiling)}); "
            "ask for an earlier expiry",
            param="expires_at",
        )
    return expires_at


def _expiry(body: KeyCreate, now: float) -> float | None:
    if body.expires_in is not None:
        return now + body.expires_in
    if body.expires_at is None:
        return None
    when = body.expires_at if body.expires_at.tzinfo else body.expires_at.replace(tzinfo=UTC)
    if when.timestamp() <= now:
        raise InvalidRequest("expires_at is in the past; give a future time", param="expires_at")
    return when.timestamp()


OPERATIONS: list[Operation[Any]] = [
    Operation(
        "POST",
        "/keys",
        Action.KEY_CREATE,
        "Create an API key (shown once)",
        KeyCreate,
        KeyCreated,
        create_key,
        201,
    ),
    Operation("GET", "/keys", Action.KEY_LIST, "List API keys", KeyQuery, KeyList, list_keys),
    Operation("GET", "/keys/{key}", Action.KEY_READ, "Show an API key", Empty, KeyOut, show_key),
    Operation(
        "POST",
        "/keys/{key}/revoke",
        Action.KEY_REVOKE,
        "Revoke an API key",
        Empty,
        KeyOut,
        revoke_key,
    ),
    Operation(
        "POST",
        "/keys/{key}/rotate",
        Action.KEY_ROTATE,
        "Replace an API key by a new one (shown once)",
        KeyRotate,
        KeyRotated,
        rotate_key,
    ),
]

"""Sign-in through the admin API: first SSO sign-in creates the user; every one mints a key."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any
from urllib.parse import quote

from corral.errors import PermissionDenied
from corral.portal.claims import Membership, SignInRefused
from corral.portal.sessions import Session
from corral.portal.upstream import Refused, Upstream
from corral.principals import SESSION_KEY_NAME, Role


async def provision(
    upstream: Upstream,
    admin_key: str,
    member: Membership,
    *,
    create_teams: bool,
    lifetime: float,
) -> tuple[str, str]:
    """Make sure ``member`` exists with the role the claims give, and mint a key that lasts
    ``lifetime`` seconds for this sign-in. Returns (key, key id); the key is shown to nobody."""
    user = await _find(upstream, admin_key, "/users/" + quote(member.email, safe="@"))
    if user is None:
        team = await _team(upstream, admin_key, member.team, create_teams)
        user = await upstream.admin(
            "POST",
            "/users",
            admin_key,
            body={
                "name": member.name,
                "email": member.email,
                "role": member.role.value,
                "team": team["id"],
            },
        )
    elif user.get("role") != member.role.value:
        user = await upstream.admin(
            "PATCH", f"/users/{user['id']}", admin_key, body={"role": member.role.value}
        )
    created = await upstream.admin(
        "POST",
        "/keys",
        admin_key,
        body={"name": SESSION_KEY_NAME, "user": user["id"], "expires_in": max(60, int(lifetime))},
    )
    return str(created["key"]), str(created["id"])


async def session_for(upstream: Upstream, key: str, *, minted: bool, expires_at: float) -> Session:
    """A signed-in session for ``key``, filled from GET /me (who the key belongs to)."""
    return _session(await _me(upstream, key), key, minted=minted, expires_at=expires_at)


async def session_key_for(upstream: Upstream, key: str, *, now: float, lifetime: float) -> Session:
    """A session for a pasted ``key`` that acts with a key of its own, minted with ``key`` and
    lasting at most the session: signing out revokes it, and so does revoking ``key``, so a
    copied cookie dies with either. Falls back to ``key`` itself when it may not mint one."""
    me = await _me(upstream, key)
    ends = min(now + lifetime, _timestamp(me.get("expires_at")) or now + lifetime)
    pasted = _session(me, key, minted=False, expires_at=ends)
    body: dict[str, Any] = {"name": SESSION_KEY_NAME, "expires_in": int(ends - now)}
    if pasted.user_id is None:
        body["service"] = True
    try:
        created = await upstream.admin("POST", "/keys", key, body=body)
    except Refused as exc:
        if exc.status == 401:
            raise
        return pasted  # e.g. a key about to expire, or a service key its role may not mint
    return replace(pasted, key=str(created["key"]), key_id=str(created["id"]), minted=True)


async def _me(upstream: Upstream, key: str) -> dict[str, Any]:
    try:
        return await upstream.admin("GET", "/me", key)
    except Refused as exc:
        if exc.status == 401:
            raise PermissionDenied(
                "that API key is not valid (unknown, revoked or expired); check it and try again"
            ) from exc
        raise


def _session(me: dict[str, Any], key: str, *, minted: bool, expires_at: float) -> Session:
    user = me.get("user") or {}
    team = me.get("team") or {}
    return Session(
        key=key,
        key_id=str(me["key_id"]),
        minted=minted,
        role=Role(me["role"]),
        name=str(user.get("name") or user.get("email") or team.get("name") or "service key"),
        user_id=user.get("id"),
        team_id=team.get("id"),
        team_name=team.get("name"),
        expires_at=expires_at,
    ).renewed()


def _timestamp(value: object) -> float | None:
    if not isinstance(value, str):
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


async def _find(upstream: Upstream, key: str, path: str) -> dict[str, Any] | None:
    try:
        return await upstream.admin("GET", path, key)
    except Refused as exc:
        if exc.status == 404:
            return None
        raise


async def _team(upstream: Upstream, key: str, name: str, create: bool) -> dict[str, Any]:
    team = await _find(upstream, key, "/teams/" + quote(name, safe=""))
    if team is not None:
        return team
    if not create:
        raise SignInRefused(
            f"your identity provider puts you in team {name!r}, which Corral does not have; "
            "ask a platform-admin to create it"
        )
    return await upstream.admin("POST", "/teams", key, body={"name": name})

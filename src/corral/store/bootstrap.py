"""The first start: a platform-admin key, shown once, so someone can create everything else;
and its recovery on the store's own machine when that key is lost."""

from __future__ import annotations

from dataclasses import dataclass, field

from corral.principals import Role, display_key, hash_key, new_api_key
from corral.store.port import Store
from corral.store.records import SYSTEM, Actor, ApiKey, KeyMaterial, KeySpec, User

BOOTSTRAP_TEAM = "platform"
BOOTSTRAP_USER = "admin"
RECOVERY_KEY_NAMES = frozenset({"bootstrap", "admin-reset"})
"""Names of the keys a reset replaces (and revokes): the first one and earlier resets."""


@dataclass(frozen=True, slots=True)
class BootstrapKey:
    """The first platform-admin key: the caller prints ``secret`` once and forgets it."""

    key: ApiKey
    secret: str = field(repr=False)  # never in a log line by accident


async def bootstrap_admin_key(
    store: Store, server_secret: bytes, now: float
) -> BootstrapKey | None:
    """On the store's first start, create team ``platform``, user ``admin`` and their
    platform-admin key; None on every later start (including one racing this one)."""
    secret = new_api_key()
    material = KeyMaterial(hash_key(server_secret, secret), display_key(secret))
    key = await store.bootstrap_admin(
        material,
        team_name=BOOTSTRAP_TEAM,
        user_name=BOOTSTRAP_USER,
        actor=Actor(SYSTEM, now),
    )
    return None if key is None else BootstrapKey(key, secret)


@dataclass(frozen=True, slots=True)
class ResetKey:
    """A new platform-admin key from ``reset_admin_key`` and the lost ones it revoked."""

    key: ApiKey
    secret: str = field(repr=False)
    revoked: tuple[ApiKey, ...] = ()


async def reset_admin_key(store: Store, server_secret: bytes, actor: Actor) -> ResetKey:
    """A new platform-admin key for the ``platform`` team's ``admin`` user (made again if it
    was removed), revoking earlier bootstrap and reset keys; every change is audited as
    ``actor``'s. On a store that never started, this is the first start's key."""
    first = await bootstrap_admin_key(store, server_secret, actor.at)
    if first is not None:
        return ResetKey(first.key, first.secret)
    admin = await _admin_user(store, actor)
    lost = [
        key
        for key in await store.list_keys(user_id=admin.id, now=actor.at)
        if key.name in RECOVERY_KEY_NAMES
    ]
    secret = new_api_key()
    material = KeyMaterial(hash_key(server_secret, secret), display_key(secret))
    key = await store.create_key(
        material, KeySpec(admin.team_id, admin.id, "admin-reset"), actor=actor
    )
    revoked = tuple([await store.revoke_key(old.id, actor=actor) for old in lost])
    return ResetKey(key, secret, revoked)


async def _admin_user(store: Store, actor: Actor) -> User:
    team = await store.get_team(BOOTSTRAP_TEAM)
    if team is None:
        team = await store.create_team(BOOTSTRAP_TEAM, "Platform administrators", actor=actor)
    for user in await store.list_users(team.id):
        if user.name == BOOTSTRAP_USER and user.role is Role.PLATFORM_ADMIN:
            return user
    return await store.create_user(team.id, BOOTSTRAP_USER, None, Role.PLATFORM_ADMIN, actor=actor)

"""The first start: a platform-admin key, shown once, so someone can create everything else."""

from __future__ import annotations

from dataclasses import dataclass, field

from corral.principals import display_key, hash_key, new_api_key
from corral.store.port import Store
from corral.store.records import SYSTEM, Actor, ApiKey, KeyMaterial

BOOTSTRAP_TEAM = "platform"
BOOTSTRAP_USER = "admin"


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

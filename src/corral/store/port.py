"""The Store port: what Corral asks of its database for tenancy, keys and the audit log."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from corral.principals import Principal, Role
from corral.store.records import (
    Actor,
    ApiKey,
    AuditEntry,
    AuditQuery,
    KeyChanges,
    KeyMaterial,
    KeySpec,
    KeyState,
    Listing,
    Team,
    TeamChange,
    User,
)


class Store(Protocol):
    """Teams, users, API keys and the audit log, in SQLite, PostgreSQL or memory.

    Contract, the same for every adapter (tests/integration/store/test_contract.py runs it on all):

    - Every mutation takes the ``Actor`` making it and appends its audit entries in the same
      transaction, so a change and its record are written together or not at all. The audit
      log has no update or delete.
    - Teams and users are deleted softly (``deleted_at``) and keys are only ever revoked:
      the audit log and, later, the usage ledger keep pointing at them. Names of live teams
      and e-mails of live users are unique.
    - Lookups of a missing or deleted record return None; mutations of one raise
      ``corral.errors.NotFound``; a clash with a live record raises ``corral.errors.Conflict``
      naming the field. An unreachable database raises ``corral.errors.TemporaryError``.
    - A ``ref`` is an id (``team_…``, ``user_…``) or the natural key (team name, user e-mail).
    """

    async def create_team(
        self, name: str, description: str, *, actor: Actor, max_key_lifetime: int | None = None
    ) -> Team:
        """A new team; Conflict when a live team has that name."""
        ...

    async def update_team(self, team_id: str, *, actor: Actor, change: TeamChange) -> Team:
        """Change a team's description and/or maximum key lifetime (the fields ``change``
        sets); existing keys keep their expiry."""
        ...

    async def get_team(self, ref: str) -> Team | None:
        """The live team with this id or name."""
        ...

    async def list_teams(self, listing: Listing | None = None) -> list[Team]:
        """Live teams by (name, id), one page of them (a page's ``after`` is (name, id))."""
        ...

    async def delete_team(self, team_id: str, *, actor: Actor, force: bool = False) -> Team:
        """Delete a team; Conflict while it has live users or active keys, unless ``force``,
        which deletes those users and revokes those keys too (each audited)."""
        ...

    async def create_user(
        self, team_id: str, name: str, email: str | None, role: Role, *, actor: Actor
    ) -> User:
        """A new user in a live team; Conflict when a live user has that e-mail."""
        ...

    async def get_user(self, ref: str) -> User | None:
        """The live user with this id or e-mail."""
        ...

    async def list_users(
        self, team_id: str | None = None, listing: Listing | None = None
    ) -> list[User]:
        """Live users (of one team, or all) by (name, id), one page of them."""
        ...

    async def update_user(
        self, user_id: str, *, actor: Actor, role: Role | None = None, name: str | None = None
    ) -> User:
        """Change a user's role and/or name; fields left None stay as they are."""
        ...

    async def delete_user(self, user_id: str, *, actor: Actor) -> User:
        """Delete a user and revoke their active keys."""
        ...

    async def create_key(self, material: KeyMaterial, spec: KeySpec, *, actor: Actor) -> ApiKey:
        """Store a new key for a live team (and live user of that team, when one is given)."""
        ...

    async def get_key(self, key_id: str) -> ApiKey | None:
        """The key with this id, whatever its state."""
        ...

    async def list_keys(
        self,
        *,
        team_id: str | None = None,
        user_id: str | None = None,
        include_inactive: bool = False,
        now: float,
        state: KeyState | None = None,
        listing: Listing | None = None,
    ) -> list[ApiKey]:
        """Keys (of a team and/or user, or all), newest first (by created_at, then id; a
        page's ``after`` is (created_at, id)); revoked and expired ones only with
        ``include_inactive`` or a ``state`` asking for them."""
        ...

    async def revoke_key(self, key_id: str, *, actor: Actor) -> ApiKey:
        """Revoke a key now; Conflict when it is already revoked."""
        ...

    async def rotate_key(
        self,
        key_id: str,
        material: KeyMaterial,
        *,
        actor: Actor,
        grace_until: float | None,
        expires_at: float | None = None,
    ) -> tuple[ApiKey, ApiKey]:
        """Replace an active key by a new one with the same team, owner, name, models and
        expiry (``expires_at`` instead, when it is sooner). The old key is revoked now, or —
        with ``grace_until`` — expires then. Returns (old, new)."""
        ...

    async def active_keys(self, now: float) -> dict[str, Principal]:
        """Key hash → principal for every key that works at ``now`` (for the gateway's cache)."""
        ...

    async def change_version(self) -> int:
        """The newest change version committed (read before ``active_keys``, then replay the
        changes after it with ``key_changes``)."""
        ...

    async def key_changes(self, since: int, now: float) -> KeyChanges | None:
        """Keys whose principal changed after version ``since`` (created, revoked, rotated, or
        their owner or team changed), as of ``now``; None when the change log no longer reaches
        back that far (load ``active_keys`` again). Reads at most a bounded batch: call again
        until the version stops advancing."""
        ...

    async def record_key_use(self, last_used: Mapping[str, float]) -> None:
        """Advance keys' last-used times (key id → time); never moves one backwards."""
        ...

    async def list_audit(self, query: AuditQuery) -> list[AuditEntry]:
        """Audit entries matching ``query``, in the order it asks for."""
        ...

    async def bootstrap_admin(
        self, material: KeyMaterial, *, team_name: str, user_name: str, actor: Actor
    ) -> ApiKey | None:
        """On the first start only: a team, a platform-admin user and their key, in one
        transaction. Returns None (and changes nothing) once any start has done it."""
        ...

    async def get_meta(self, name: str) -> str | None:
        """A store-wide setting Corral keeps for itself (e.g. the server secret's fingerprint)."""
        ...

    async def put_meta_once(self, name: str, value: str) -> bool:
        """Set a store-wide setting unless it is set already; True when this call set it."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...

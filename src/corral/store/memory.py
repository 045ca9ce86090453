"""InMemoryStore: the Store port in dictionaries, for unit tests and throwaway instances."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any, TypeVar

from corral.errors import Conflict, NotFound
from corral.principals import Principal, Role
from corral.store.changes import (
    BOOTSTRAP_META,
    PendingAudit,
    key_audit,
    team_audit,
    team_busy,
    user_audit,
)
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
    new_id,
)


class InMemoryStore:
    """Keeps everything in memory; behaves like the SQL adapters, contract tests included."""

    def __init__(self) -> None:
        self._teams: dict[str, Team] = {}
        self._users: dict[str, User] = {}
        self._keys: dict[str, ApiKey] = {}
        self._hashes: dict[str, str] = {}  # key id → key hash
        self._audit: list[AuditEntry] = []
        self._meta: dict[str, str] = {}

    # -- teams -------------------------------------------------------------------------------

    async def create_team(
        self, name: str, description: str, *, actor: Actor, max_key_lifetime: int | None = None
    ) -> Team:
        if await self.get_team(name) is not None:
            raise Conflict(f"a team named {name!r} already exists", param="name")
        team = Team(new_id("team"), name, description, actor.at, None, max_key_lifetime)
        self._teams[team.id] = team
        self._log(actor, team_audit("team.create", None, team))
        return team

    async def update_team(self, team_id: str, *, actor: Actor, change: TeamChange) -> Team:
        team = self._live_team(team_id)
        changed = change.applied_to(team)
        if changed != team:
            self._teams[team_id] = changed
            self._log(actor, team_audit("team.update", team, changed))
        return changed

    async def get_team(self, ref: str) -> Team | None:
        for team in self._teams.values():
            if team.deleted_at is None and ref in (team.id, team.name):
                return team
        return None

    async def list_teams(self, listing: Listing | None = None) -> list[Team]:
        live = (t for t in self._teams.values() if t.deleted_at is None)
        return _page(sorted(live, key=_name), _name, listing or Listing())

    async def delete_team(self, team_id: str, *, actor: Actor, force: bool = False) -> Team:
        team = self._live_team(team_id)
        users = [u for u in self._users.values() if u.team_id == team_id and u.deleted_at is None]
        keys = [k for k in self._keys.values() if k.team_id == team_id and k.revoked_at is None]
        if (users or keys) and not force:
            raise Conflict(team_busy(team.name, len(users), len(keys)), param="force")
        for key in keys:
            self._revoke(key, actor)
        for user in users:
            self._users[user.id] = gone = replace(user, deleted_at=actor.at)
            self._log(actor, user_audit("user.delete", user, gone))
        self._teams[team_id] = deleted = replace(team, deleted_at=actor.at)
        self._log(actor, team_audit("team.delete", team, deleted))
        return deleted

    # -- users -------------------------------------------------------------------------------

    async def create_user(
        self, team_id: str, name: str, email: str | None, role: Role, *, actor: Actor
    ) -> User:
        self._live_team(team_id)
        if email is not None and await self.get_user(email) is not None:
            raise Conflict(f"a user with e-mail {email!r} already exists", param="email")
        user = User(new_id("user"), team_id, name, email, role, actor.at)
        self._users[user.id] = user
        self._log(actor, user_audit("user.create", None, user))
        return user

    async def get_user(self, ref: str) -> User | None:
        for user in self._users.values():
            if user.deleted_at is None and ref in (user.id, user.email):
                return user
        return None

    async def list_users(
        self, team_id: str | None = None, listing: Listing | None = None
    ) -> list[User]:
        live = (u for u in self._users.values() if u.deleted_at is None)
        mine = sorted((u for u in live if team_id in (None, u.team_id)), key=_name)
        return _page(mine, _name, listing or Listing())

    async def update_user(
        self, user_id: str, *, actor: Actor, role: Role | None = None, name: str | None = None
    ) -> User:
        user = self._live_user(user_id)
        changed = replace(user, role=role or user.role, name=name or user.name)
        if changed != user:
            self._users[user_id] = changed
            self._log(actor, user_audit("user.update", user, changed))
        return changed

    async def delete_user(self, user_id: str, *, actor: Actor) -> User:
        user = self._live_user(user_id)
        for key in list(self._keys.values()):
            if key.user_id == user_id and key.revoked_at is None:
                self._revoke(key, actor)
        self._users[user_id] = gone = replace(user, deleted_at=actor.at)
        self._log(actor, user_audit("user.delete", user, gone))
        return gone

    # -- keys --------------------------------------------------------------------------------

    async def create_key(self, material: KeyMaterial, spec: KeySpec, *, actor: Actor) -> ApiKey:
        self._live_team(spec.team_id)
        if spec.user_id is not None and self._live_user(spec.user_id).team_id != spec.team_id:
            raise Conflict("the key's user is not in the key's team", param="user")
        return self._add_key(material, spec, actor, "key.create")

    async def get_key(self, key_id: str) -> ApiKey | None:
        return self._keys.get(key_id)

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
        wanted = state or (None if include_inactive else "active")
        found = [
            key
            for key in self._keys.values()
            if team_id in (None, key.team_id)
            and user_id in (None, key.user_id)
            and wanted in (None, key.state(now))
        ]
        page = listing or Listing()
        if page.after is not None:  # keys go newest first: position (-created_at, id)
            page = replace(page, after=(-page.after[0], page.after[1]))
        return _page(sorted(found, key=_newest_first), _newest_first, page)

    async def revoke_key(self, key_id: str, *, actor: Actor) -> ApiKey:
        key = self._keys.get(key_id)
        if key is None:
            raise NotFound(f"no key with id {key_id!r}", param="key")
        if key.revoked_at is not None:
            raise Conflict(f"key {key_id} is already revoked", param="key")
        return self._revoke(key, actor)

    async def rotate_key(
        self,
        key_id: str,
        material: KeyMaterial,
        *,
        actor: Actor,
        grace_until: float | None,
        expires_at: float | None = None,
    ) -> tuple[ApiKey, ApiKey]:
        old = self._keys.get(key_id)
        if old is None:
            raise NotFound(f"no key with id {key_id!r}", param="key")
        if old.state(actor.at) != "active":
            raise Conflict(f"key {key_id} is not active; create a new key instead", param="key")
        spec = old.successor(expires_at)
        if grace_until is None:
            retired = replace(old, revoked_at=actor.at)
        else:
            until = grace_until if old.expires_at is None else min(old.expires_at, grace_until)
            retired = replace(old, expires_at=until)
        self._keys[key_id] = retired
        new = self._add_key(material, spec, actor, "key.create")
        self._log(actor, key_audit("key.rotate", old, retired, replaced_by=(None, new.id)))
        return retired, new

    async def active_keys(self, now: float) -> dict[str, Principal]:
        active: dict[str, Principal] = {}
        for key in self._keys.values():
            principal = self._principal(key, now)
            if principal is not None:
                active[self._hashes[key.id]] = principal
        return active

    async def change_version(self) -> int:
        # Every change is audited, so the audit log doubles as the change log here.
        return len(self._audit)

    async def key_changes(self, since: int, now: float) -> KeyChanges | None:
        entries = self._audit[since:]
        if not entries:
            return KeyChanges(since, {}, frozenset())
        refs = {e.target_id for e in entries}
        active: dict[str, Principal] = {}
        gone: set[str] = set()
        for key in self._keys.values():
            if refs.isdisjoint((key.id, key.team_id, key.user_id)):
                continue
            principal = self._principal(key, now)
            if principal is None:
                gone.add(self._hashes[key.id])
            else:
                active[self._hashes[key.id]] = principal
        return KeyChanges(len(self._audit), active, frozenset(gone))

    def _principal(self, key: ApiKey, now: float) -> Principal | None:
        team = self._teams.get(key.team_id)
        if key.state(now) != "active" or team is None or team.deleted_at is not None:
            return None
        user = self._users.get(key.user_id) if key.user_id is not None else None
        if user is not None and user.deleted_at is not None:
            return None
        role = user.role if user is not None else Role.DEVELOPER
        return Principal(
            key.id,
            role,
            key.team_id,
            key.user_id,
            key.allowed_models,
            key.expires_at,
            team_name=team.name,
        )

    async def record_key_use(self, last_used: Mapping[str, float]) -> None:
        for key_id, at in last_used.items():
            key = self._keys.get(key_id)
            if key is not None and (key.last_used_at is None or key.last_used_at < at):
                self._keys[key_id] = replace(key, last_used_at=at)

    # -- audit and meta ----------------------------------------------------------------------

    async def list_audit(self, query: AuditQuery) -> list[AuditEntry]:
        found = [e for e in self._audit if _matches(e, query)]
        found.sort(key=lambda e: e.id, reverse=not query.oldest_first)
        return found[: query.limit]

    async def bootstrap_admin(
        self, material: KeyMaterial, *, team_name: str, user_name: str, actor: Actor
    ) -> ApiKey | None:
        if BOOTSTRAP_META in self._meta:
            return None
        team = await self.create_team(team_name, "Platform administrators", actor=actor)
        user = await self.create_user(team.id, user_name, None, Role.PLATFORM_ADMIN, actor=actor)
        key = await self.create_key(material, KeySpec(team.id, user.id, "bootstrap"), actor=actor)
        self._meta[BOOTSTRAP_META] = str(actor.at)
        return key

    async def get_meta(self, name: str) -> str | None:
        return self._meta.get(name)

    async def put_meta_once(self, name: str, value: str) -> bool:
        if name in self._meta:
            return False
        self._meta[name] = value
        return True

    async def close(self) -> None:
        return None

    # -- internals ---------------------------------------------------------------------------

    def _live_team(self, team_id: str) -> Team:
        team = self._teams.get(team_id)
        if team is None or team.deleted_at is not None:
            raise NotFound(f"no team with id {team_id!r}", param="team")
        return team

    def _live_user(self, user_id: str) -> User:
        user = self._users.get(user_id)
        if user is None or user.deleted_at is not None:
            raise NotFound(f"no user with id {user_id!r}", param="user")
        return user

    def _add_key(self, material: KeyMaterial, spec: KeySpec, actor: Actor, action: str) -> ApiKey:
        if material.key_hash in self._hashes.values():
            raise Conflict("that key already exists; generate a fresh one", param="key")
        key = ApiKey(
            id=new_id("key"),
            team_id=spec.team_id,
            user_id=spec.user_id,
            name=spec.name,
            display=material.display,
            allowed_models=spec.allowed_models,
            expires_at=spec.expires_at,
            created_at=actor.at,
            created_by=actor.key_id,
        )
        self._keys[key.id] = key
        self._hashes[key.id] = material.key_hash
        self._log(actor, key_audit(action, None, key))
        return key

    def _revoke(self, key: ApiKey, actor: Actor) -> ApiKey:
        self._keys[key.id] = revoked = replace(key, revoked_at=actor.at)
        self._log(actor, key_audit("key.revoke", key, revoked))
        return revoked

    def _log(self, actor: Actor, pending: PendingAudit) -> None:
        entry = AuditEntry(
            id=len(self._audit) + 1,
            at=actor.at,
            actor_key_id=actor.key_id,
            address=actor.address,
            action=pending.action,
            target_type=pending.target_type,
            target_id=pending.target_id,
            team_id=pending.team_id,
            changes=dict(pending.changes),
        )
        self._audit.append(entry)


def _name(record: Team | User) -> tuple[str, str]:
    return (record.name, record.id)


def _newest_first(key: ApiKey) -> tuple[float, str]:
    return (-key.created_at, key.id)


_Listed = TypeVar("_Listed", Team, User, ApiKey)


def _page(
    ordered: list[_Listed], position: Callable[[_Listed], tuple[Any, str]], page: Listing
) -> list[_Listed]:
    """One page of ``ordered`` records (sorted by ``position``), as the SQL adapter pages."""
    found = [
        r
        for r in ordered
        if (page.name_prefix is None or r.name.startswith(page.name_prefix))
        and (page.after is None or position(r) > page.after)
    ]
    return found if page.limit is None else found[: page.limit]


def _matches(entry: AuditEntry, q: AuditQuery) -> bool:
    checks = (
        q.since is None or entry.at >= q.since,
        q.until is None or entry.at < q.until,
        q.actor_key_id in (None, entry.actor_key_id),
        q.action in (None, entry.action),
        q.target_id in (None, entry.target_id),
        q.team_id in (None, entry.team_id),
        q.before_id is None or entry.id < q.before_id,
        q.after_id is None or entry.id > q.after_id,
    )
    return all(checks)

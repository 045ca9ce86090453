"""SqlStore: the Store port on SQLAlchemy 2 (async), for SQLite and PostgreSQL."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Select, and_, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from corral.errors import Conflict, NotFound
from corral.principals import Principal, Role
from corral.store.changelog import changes_since, current_version, record_changes
from corral.store.changes import (
    BOOTSTRAP_META,
    PendingAudit,
    key_audit,
    team_audit,
    team_busy,
    user_audit,
)
from corral.store.engine import DEFAULT_TIMEOUT, open_engine, translated
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
from corral.store.tables import AuditRow, KeyRow, MetaRow, TeamRow, UserRow

_Live = TypeVar("_Live", TeamRow, UserRow)


class SqlStore:
    """The Store port over a SQL database; see ``Store`` for the contract."""

    def __init__(self, url: str, timeout: float = DEFAULT_TIMEOUT) -> None:
        self._url = url
        self._engine = open_engine(url, timeout)
        self._sessions = async_sessionmaker(self._engine, expire_on_commit=False)

    @contextlib.asynccontextmanager
    async def _tx(self) -> AsyncIterator[AsyncSession]:
        with translated(self._url):
            async with self._sessions() as session, session.begin():
                yield session
                changed: list[tuple[str, str]] = session.info.pop(_CHANGED, [])
                if changed:
                    await record_changes(session, changed, session.info.pop(_CHANGED_AT))

    # -- teams -------------------------------------------------------------------------------

    async def create_team(
        self, name: str, description: str, *, actor: Actor, max_key_lifetime: int | None = None
    ) -> Team:
        row = TeamRow(
            id=new_id("team"),
            name=name,
            description=description,
            created_at=actor.at,
            max_key_lifetime=max_key_lifetime,
        )
        try:
            async with self._tx() as s:
                s.add(row)
                await s.flush()
                _log(s, actor, team_audit("team.create", None, row.record()))
        except IntegrityError as exc:
            raise Conflict(f"a team named {name!r} already exists", param="name") from exc
        return row.record()

    async def get_team(self, ref: str) -> Team | None:
        async with self._tx() as s:
            row = await s.scalar(_live(TeamRow).where(or_(TeamRow.id == ref, TeamRow.name == ref)))
        return None if row is None else row.record()

    async def list_teams(self, listing: Listing | None = None) -> list[Team]:
        query = _by_name(_live(TeamRow), TeamRow, listing or Listing())
        async with self._tx() as s:
            return [r.record() for r in await s.scalars(query)]

    async def update_team(self, team_id: str, *, actor: Actor, change: TeamChange) -> Team:
        async with self._tx() as s:
            row = await _locked(s, TeamRow, team_id, "team")
            before = row.record()
            after = change.applied_to(before)
            row.description, row.max_key_lifetime = after.description, after.max_key_lifetime
            if after != before:
                _log(s, actor, team_audit("team.update", before, after))
        return row.record()

    async def delete_team(self, team_id: str, *, actor: Actor, force: bool = False) -> Team:
        async with self._tx() as s:
            row = await _locked(s, TeamRow, team_id, "team")
            users = list(await s.scalars(_live(UserRow).where(UserRow.team_id == team_id)))
            keys = list(await s.scalars(_active(KeyRow.team_id == team_id)))
            if (users or keys) and not force:
                raise Conflict(team_busy(row.name, len(users), len(keys)), param="force")
            for key in keys:
                _revoke(s, key, actor)
            for user in users:
                before = user.record()
                user.deleted_at = actor.at
                _log(s, actor, user_audit("user.delete", before, user.record()))
            before_team = row.record()
            row.deleted_at = actor.at
            _log(s, actor, team_audit("team.delete", before_team, row.record()))
        return row.record()

    # -- users -------------------------------------------------------------------------------

    async def create_user(
        self, team_id: str, name: str, email: str | None, role: Role, *, actor: Actor
    ) -> User:
        row = UserRow(
            id=new_id("user"),
            team_id=team_id,
            name=name,
            email=email,
            role=role.value,
            created_at=actor.at,
        )
        try:
            async with self._tx() as s:
                await _locked(s, TeamRow, team_id, "team")
                s.add(row)
                await s.flush()
                _log(s, actor, user_audit("user.create", None, row.record()))
        except IntegrityError as exc:
            raise Conflict(f"a user with e-mail {email!r} already exists", param="email") from exc
        return row.record()

    async def get_user(self, ref: str) -> User | None:
        async with self._tx() as s:
            row = await s.scalar(_live(UserRow).where(or_(UserRow.id == ref, UserRow.email == ref)))
        return None if row is None else row.record()

    async def list_users(
        self, team_id: str | None = None, listing: Listing | None = None
    ) -> list[User]:
        query = _by_name(_live(UserRow), UserRow, listing or Listing())
        if team_id is not None:
            query = query.where(UserRow.team_id == team_id)
        async with self._tx() as s:
            return [r.record() for r in await s.scalars(query)]

    async def update_user(
        self, user_id: str, *, actor: Actor, role: Role | None = None, name: str | None = None
    ) -> User:
        async with self._tx() as s:
            row = await _locked(s, UserRow, user_id, "user")
            before = row.record()
            row.role = (role or before.role).value
            row.name = name or before.name
            if row.record() != before:
                _log(s, actor, user_audit("user.update", before, row.record()))
        return row.record()

    async def delete_user(self, user_id: str, *, actor: Actor) -> User:
        async with self._tx() as s:
            row = await _locked(s, UserRow, user_id, "user")
            for key in await s.scalars(_active(KeyRow.user_id == user_id)):
                _revoke(s, key, actor)
            before = row.record()
            row.deleted_at = actor.at
            _log(s, actor, user_audit("user.delete", before, row.record()))
        return row.record()

    # -- keys --------------------------------------------------------------------------------

    async def create_key(self, material: KeyMaterial, spec: KeySpec, *, actor: Actor) -> ApiKey:
        async with self._tx() as s:
            await _locked(s, TeamRow, spec.team_id, "team")
            if spec.user_id is not None:
                owner = await _locked(s, UserRow, spec.user_id, "user")
                if owner.team_id != spec.team_id:
                    raise Conflict("the key's user is not in the key's team", param="user")
            return await _add_key(s, material, spec, actor)

    async def get_key(self, key_id: str) -> ApiKey | None:
        async with self._tx() as s:
            row = await s.get(KeyRow, key_id)
        return None if row is None else row.record()

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
        page = listing or Listing()
        query = select(KeyRow).order_by(KeyRow.created_at.desc(), KeyRow.id).limit(page.limit)
        if team_id is not None:
            query = query.where(KeyRow.team_id == team_id)
        if user_id is not None:
            query = query.where(KeyRow.user_id == user_id)
        query = query.where(*_key_state(state or (None if include_inactive else "active"), now))
        if page.name_prefix is not None:
            query = query.where(KeyRow.name.startswith(page.name_prefix, autoescape=True))
        if page.after is not None:
            at, key_id = page.after
            query = query.where(
                or_(KeyRow.created_at < at, and_(KeyRow.created_at == at, KeyRow.id > key_id))
            )
        async with self._tx() as s:
            return [r.record() for r in await s.scalars(query)]

    async def revoke_key(self, key_id: str, *, actor: Actor) -> ApiKey:
        async with self._tx() as s:
            row = await s.get(KeyRow, key_id, with_for_update=True)
            if row is None:
                raise NotFound(f"no key with id {key_id!r}", param="key")
            if row.revoked_at is not None:
                raise Conflict(f"key {key_id} is already revoked", param="key")
            _revoke(s, row, actor)
        return row.record()

    async def rotate_key(
        self,
        key_id: str,
        material: KeyMaterial,
        *,
        actor: Actor,
        grace_until: float | None,
        expires_at: float | None = None,
    ) -> tuple[ApiKey, ApiKey]:
        async with self._tx() as s:
            row = await s.get(KeyRow, key_id, with_for_update=True)
            if row is None:
                raise NotFound(f"no key with id {key_id!r}", param="key")
            old = row.record()
            if old.state(actor.at) != "active":
                raise Conflict(f"key {key_id} is not active; create a new key instead", param="key")
            if grace_until is None:
                row.revoked_at = actor.at
            else:
                row.expires_at = (
                    grace_until if old.expires_at is None else min(old.expires_at, grace_until)
                )
            spec = old.successor(expires_at)
            new = await _add_key(s, material, spec, actor)
            _log(s, actor, key_audit("key.rotate", old, row.record(), replaced_by=(None, new.id)))
        return row.record(), new

    async def active_keys(self, now: float) -> dict[str, Principal]:
        query = (
            select(KeyRow, UserRow.role, TeamRow.name)
            .join(TeamRow, and_(TeamRow.id == KeyRow.team_id, TeamRow.deleted_at.is_(None)))
            .outerjoin(UserRow, UserRow.id == KeyRow.user_id)
            .where(KeyRow.revoked_at.is_(None), _unexpired(now))
            .where(or_(KeyRow.user_id.is_(None), UserRow.deleted_at.is_(None)))
        )
        async with self._tx() as s:
            rows = (await s.execute(query)).all()
        return {key.key_hash: key.principal(role, team) for key, role, team in rows}

    async def change_version(self) -> int:
        async with self._tx() as s:
            return await current_version(s)

    async def key_changes(self, since: int, now: float) -> KeyChanges | None:
        async with self._tx() as s:
            changes = await changes_since(s, since)
            if changes is None:
                return None
            if not changes:
                return KeyChanges(since, {}, frozenset())
            refs: dict[str, set[str]] = {"key": set(), "team": set(), "user": set()}
            for change in changes:
                refs.get(change.scope, set()).add(change.ref)
            touched = [
                column.in_(sorted(ids))
                for column, ids in (
                    (KeyRow.id, refs["key"]),
                    (KeyRow.team_id, refs["team"]),
                    (KeyRow.user_id, refs["user"]),
                )
                if ids
            ]
            rows = (await s.execute(_principals().where(or_(*touched)))).all() if touched else []
        active: dict[str, Principal] = {}
        gone: set[str] = set()
        for key, role, user_gone, team_name, team_gone in rows:
            works = key.revoked_at is None and (key.expires_at is None or key.expires_at > now)
            if works and team_gone is None and user_gone is None:
                active[key.key_hash] = key.principal(role, team_name)
            else:
                gone.add(key.key_hash)
        return KeyChanges(changes[-1].version, active, frozenset(gone))

    async def record_key_use(self, last_used: Mapping[str, float]) -> None:
        if not last_used:
            return
        async with self._tx() as s:
            for key_id, at in sorted(last_used.items()):  # one lock order: no deadlocks
                later = or_(KeyRow.last_used_at.is_(None), KeyRow.last_used_at < at)
                await s.execute(
                    update(KeyRow).where(KeyRow.id == key_id, later).values(last_used_at=at)
                )

    # -- audit and meta ----------------------------------------------------------------------

    async def list_audit(self, query: AuditQuery) -> list[AuditEntry]:
        order = AuditRow.id.asc() if query.oldest_first else AuditRow.id.desc()
        select_ = select(AuditRow).where(*_audit_filters(query)).order_by(order).limit(query.limit)
        async with self._tx() as s:
            return [r.record() for r in await s.scalars(select_)]

    async def bootstrap_admin(
        self, material: KeyMaterial, *, team_name: str, user_name: str, actor: Actor
    ) -> ApiKey | None:
        try:
            async with self._tx() as s:
                s.add(MetaRow(name=BOOTSTRAP_META, value=str(actor.at)))
                await s.flush()  # a second start (or a racing process) stops here
                team = TeamRow(
                    id=new_id("team"),
                    name=team_name,
                    description="Platform administrators",
                    created_at=actor.at,
                )
                user = UserRow(
                    id=new_id("user"),
                    team_id=team.id,
                    name=user_name,
                    email=None,
                    role=Role.PLATFORM_ADMIN.value,
                    created_at=actor.at,
                )
                s.add(team)
                await s.flush()  # the team first: PostgreSQL checks the user's foreign key at once
                s.add(user)
                await s.flush()
                _log(s, actor, team_audit("team.create", None, team.record()))
                _log(s, actor, user_audit("user.create", None, user.record()))
                return await _add_key(s, material, KeySpec(team.id, user.id, "bootstrap"), actor)
        except IntegrityError:
            return None

    async def get_meta(self, name: str) -> str | None:
        async with self._tx() as s:
            row = await s.get(MetaRow, name)
        return None if row is None else row.value

    async def put_meta_once(self, name: str, value: str) -> bool:
        try:
            async with self._tx() as s:
                s.add(MetaRow(name=name, value=value))
        except IntegrityError:
            return False
        return True

    async def close(self) -> None:
        await self._engine.dispose()


# -- row helpers -----------------------------------------------------------------------------


_CHANGED = "corral.changes"
_CHANGED_AT = "corral.changes_at"


def _principals() -> Select[KeyRow, str, float | None, str, float | None]:
    """Keys with what their principal holds and what decides whether they work: owner role
    and deletion time, team name and deletion time."""
    return (
        select(KeyRow, UserRow.role, UserRow.deleted_at, TeamRow.name, TeamRow.deleted_at)
        .outerjoin(TeamRow, TeamRow.id == KeyRow.team_id)
        .outerjoin(UserRow, UserRow.id == KeyRow.user_id)
    )


def _live(model: type[TeamRow] | type[UserRow]) -> Select[Any]:
    return select(model).where(model.deleted_at.is_(None))


def _by_name(query: Select[Any], model: type[_Live], page: Listing) -> Select[Any]:
    """``query`` in (name, id) order, one page of it."""
    query = query.order_by(model.name, model.id).limit(page.limit)
    if page.name_prefix is not None:
        query = query.where(model.name.startswith(page.name_prefix, autoescape=True))
    if page.after is not None:
        name, id_ = page.after
        query = query.where(or_(model.name > name, and_(model.name == name, model.id > id_)))
    return query


def _key_state(state: KeyState | None, now: float) -> list[Any]:
    if state == "active":
        return [KeyRow.revoked_at.is_(None), _unexpired(now)]
    if state == "revoked":
        return [KeyRow.revoked_at.is_not(None)]
    if state == "expired":
        return [KeyRow.revoked_at.is_(None), KeyRow.expires_at <= now]
    return []


def _active(*where: Any) -> Select[KeyRow]:
    return select(KeyRow).where(KeyRow.revoked_at.is_(None), *where)


def _unexpired(now: float) -> Any:
    return or_(KeyRow.expires_at.is_(None), KeyRow.expires_at > now)


async def _locked(s: AsyncSession, model: type[_Live], id_: str, what: str) -> _Live:
    row = await s.get(model, id_, with_for_update=True)
    if row is None or row.deleted_at is not None:
        raise NotFound(f"no {what} with id {id_!r}", param=what)
    return row


async def _add_key(s: AsyncSession, material: KeyMaterial, spec: KeySpec, actor: Actor) -> ApiKey:
    models = None if spec.allowed_models is None else sorted(spec.allowed_models)
    row = KeyRow(
        id=new_id("key"),
        key_hash=material.key_hash,
        display=material.display,
        team_id=spec.team_id,
        user_id=spec.user_id,
        name=spec.name,
        allowed_models=models,
        expires_at=spec.expires_at,
        created_at=actor.at,
        created_by=actor.key_id,
    )
    s.add(row)
    await s.flush()
    _log(s, actor, key_audit("key.create", None, row.record()))
    return row.record()


def _revoke(s: AsyncSession, row: KeyRow, actor: Actor) -> None:
    before = row.record()
    row.revoked_at = actor.at
    _log(s, actor, key_audit("key.revoke", before, row.record()))


def _log(s: AsyncSession, actor: Actor, pending: PendingAudit) -> None:
    # Every audited change is also a change for the key directories (written at commit).
    s.info.setdefault(_CHANGED, []).append((pending.target_type, pending.target_id))
    s.info[_CHANGED_AT] = actor.at
    changes = {name: [old, new] for name, (old, new) in pending.changes.items()}
    s.add(
        AuditRow(
            at=actor.at,
            actor_key_id=actor.key_id,
            address=actor.address,
            action=pending.action,
            target_type=pending.target_type,
            target_id=pending.target_id,
            team_id=pending.team_id,
            changes=changes,
        )
    )


def _audit_filters(q: AuditQuery) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = []
    if q.since is not None:
        where.append(AuditRow.at >= q.since)
    if q.until is not None:
        where.append(AuditRow.at < q.until)
    if q.before_id is not None:
        where.append(AuditRow.id < q.before_id)
    if q.after_id is not None:
        where.append(AuditRow.id > q.after_id)
    exact = {
        AuditRow.actor_key_id: q.actor_key_id,
        AuditRow.action: q.action,
        AuditRow.target_id: q.target_id,
        AuditRow.team_id: q.team_id,
    }
    where.extend(column == value for column, value in exact.items() if value is not None)
    return where

"""The usage ledger and limits in SQL: one row per request id, batched inserts, grouped reports."""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from sqlalchemy import Boolean, Float, Index, Integer, String, bindparam, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.orm import Mapped, mapped_column

from corral.store.changelog import changes_since, current_version, record_changes
from corral.store.engine import DEFAULT_TIMEOUT, open_engine, translated
from corral.store.records import Actor
from corral.store.tables import AuditRow, Base, UtcTime, sqlite_time

GROUPS = ("day", "model", "team", "key", "user")


class UsageRow(Base):
    __tablename__ = "usage_records"
    # Every report filters on time; team, key and developer views add their holder.
    __table_args__ = (
        Index("ix_usage_records_time", "time"),
        Index("ix_usage_records_team_id_time", "team_id", "time"),
        Index("ix_usage_records_user_id_time", "user_id", "time"),
        Index("ix_usage_records_key_id_time", "key_id", "time"),
    )

    request_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    time: Mapped[float] = mapped_column(UtcTime)
    day: Mapped[str] = mapped_column(String(10), index=True)  # UTC YYYY-MM-DD, for reports
    key_id: Mapped[str] = mapped_column(String(40))
    team_id: Mapped[str | None] = mapped_column(String(40))
    user_id: Mapped[str | None] = mapped_column(String(40))
    model: Mapped[str] = mapped_column(String(128))
    endpoint: Mapped[str] = mapped_column(String(300))
    kind: Mapped[str] = mapped_column(String(32))
    status: Mapped[int] = mapped_column(Integer)
    outcome: Mapped[str] = mapped_column(String(32))
    prompt_tokens: Mapped[int] = mapped_column(Integer)
    completion_tokens: Mapped[int] = mapped_column(Integer)
    cost_usd: Mapped[float] = mapped_column(Float)
    estimated: Mapped[bool] = mapped_column(Boolean)
    latency: Mapped[float] = mapped_column(Float)
    time_to_first_token: Mapped[float | None] = mapped_column(Float)


class LimitRow(Base):
    __tablename__ = "limits"

    scope: Mapped[str] = mapped_column(String(8), primary_key=True)  # team | key
    scope_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    rpm: Mapped[int | None] = mapped_column(Integer)
    tpm: Mapped[int | None] = mapped_column(Integer)
    max_concurrent: Mapped[int | None] = mapped_column(Integer)
    monthly_budget_usd: Mapped[float | None] = mapped_column(Float)
    updated_at: Mapped[float] = mapped_column(UtcTime)


@dataclass(frozen=True, slots=True)
class UsageFilter:
    """Which records a report covers; None means no restriction on that field."""

    since: float
    until: float | None = None
    team_id: str | None = None
    key_ids: frozenset[str] | None = None
    user_id: str | None = None
    model: str | None = None


@dataclass(frozen=True, slots=True)
class LimitChanges:
    """Limits changed since a version: (scope, id) → the limits now (None: none set)."""

    version: int
    limits: dict[tuple[str, str], LimitSetting | None]


@dataclass(frozen=True, slots=True)
class LimitSetting:
    """Limits of one team or key; None fields are unlimited."""

    scope: str
    scope_id: str
    rpm: int | None = None
    tpm: int | None = None
    max_concurrent: int | None = None
    monthly_budget_usd: float | None = None


def day_of(at: float) -> str:
    """The UTC calendar day of a Unix time."""
    return time.strftime("%Y-%m-%d", time.gmtime(at))


_COLUMNS = [c.name for c in UsageRow.__table__.columns if c.name != "day"]
_UPDATED = [c.name for c in UsageRow.__table__.columns if c.name != "request_id"]
LOST_OUTCOME = "gateway_lost"
"""Outcome of a reconciler's estimate for a lost request; a real record replaces it."""
SpendScope = Literal["team", "key"]


class UsageLedger(Protocol):
    """The usage ledger and limits port (SqlUsage; InMemoryUsage for tests)."""

    async def close(self) -> None: ...

    async def write_usage(self, records: Sequence[Any]) -> None:
        """Insert records; a request id already present is kept once."""
        ...

    async def report(self, where: UsageFilter, group_by: Iterable[str]) -> list[dict[str, Any]]:
        """Requests, tokens and cost per group."""
        ...

    async def spend_since(self, since: float, by: SpendScope = "team") -> dict[str, float]:
        """Team id (or key id, ``by="key"``) → dollars spent since ``since``."""
        ...

    async def set_limits(self, setting: LimitSetting, actor: Actor) -> LimitSetting | None:
        """Create or replace one team's or key's limits (audited); the limits before."""
        ...

    async def limits_of(self, scope: str, scope_id: str) -> LimitSetting | None:
        """One team's or key's limits."""
        ...

    async def all_limits(self) -> list[LimitSetting]:
        """Every team's and key's limits."""
        ...

    async def limits_version(self) -> int:
        """The newest change version (read before ``all_limits``, then replay from it)."""
        ...

    async def limit_changes(self, since: int) -> LimitChanges | None:
        """Limits set after version ``since`` (a bounded batch: call again until the version
        stops advancing); None when the change log no longer reaches back that far."""
        ...


class SqlUsage:
    """Usage ledger and limits on the same database as the tenancy store."""

    def __init__(
        self, url: str, engine: AsyncEngine | None = None, timeout: float = DEFAULT_TIMEOUT
    ) -> None:
        self._url = url
        self._engine = engine or open_engine(url, timeout)

    async def close(self) -> None:
        await self._engine.dispose()

    async def write_usage(self, records: Sequence[Any]) -> None:
        """Insert records; a request id already in the ledger is kept once, never duplicated.

        The first record of a request id stays, except that a reconciler's estimate for a
        request whose gateway was lost (outcome ``gateway_lost``) gives way to the real record.
        """
        if not records:
            return
        # One row per request id per statement: PostgreSQL refuses to upsert a row twice.
        firsts: dict[str, Any] = {}
        for record in records:
            held = firsts.get(record.request_id)
            if held is None or held.outcome == LOST_OUTCOME:
                firsts[record.request_id] = record
        dialect = self._engine.dialect.name
        if dialect == "sqlite":
            # The hot ledger path on one machine: a prepared statement and plain tuples, without
            # SQLAlchemy's per-row bind processing (a third of the cost per record).
            with translated(self._url):
                async with self._engine.begin() as conn:
                    await conn.exec_driver_sql(
                        _SQLITE_SQL, [_sqlite_row(r) for r in firsts.values()]
                    )
            return
        rows = [_row(r) for r in firsts.values()]
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        statement = _upsert(insert(UsageRow))
        with translated(self._url):
            async with self._engine.begin() as conn:
                await conn.execute(statement, rows)

    async def report(self, where: UsageFilter, group_by: Iterable[str]) -> list[dict[str, Any]]:
        """Requests, tokens and cost per group (any of day, model, team, key, user)."""
        groups = [g for g in group_by if g in GROUPS]
        columns = {
            "day": UsageRow.day,
            "model": UsageRow.model,
            "team": UsageRow.team_id,
            "key": UsageRow.key_id,
            "user": UsageRow.user_id,
        }
        keys = [columns[g].label(g) for g in groups]
        query = select(
            *keys,
            func.count().label("requests"),
            func.coalesce(func.sum(UsageRow.prompt_tokens), 0).label("prompt_tokens"),
            func.coalesce(func.sum(UsageRow.completion_tokens), 0).label("completion_tokens"),
            func.coalesce(func.sum(UsageRow.cost_usd), 0.0).label("cost_usd"),
        ).where(*_conditions(where))
        if keys:
            query = query.group_by(*keys).order_by(*keys)
        with translated(self._url):
            async with self._engine.connect() as conn:
                result = await conn.execute(query)
                return [dict(row._mapping) for row in result]

    async def spend_since(self, since: float, by: SpendScope = "team") -> dict[str, float]:
        """Team id (or key id) → dollars spent since ``since`` (to seed budget counters)."""
        column = UsageRow.team_id if by == "team" else UsageRow.key_id
        query = (
            select(column, func.sum(UsageRow.cost_usd))
            .where(UsageRow.time >= since, column.is_not(None))
            .group_by(column)
        )
        with translated(self._url):
            async with self._engine.connect() as conn:
                return {str(t): float(s or 0) for t, s in await conn.execute(query)}

    async def set_limits(self, setting: LimitSetting, actor: Actor) -> LimitSetting | None:
        """Create or replace the limits of one team or key, audited in the same transaction;
        returns the limits before the change (None when there were none)."""
        values = {
            "scope": setting.scope,
            "scope_id": setting.scope_id,
            "rpm": setting.rpm,
            "tpm": setting.tpm,
            "max_concurrent": setting.max_concurrent,
            "monthly_budget_usd": setting.monthly_budget_usd,
            "updated_at": time.time(),
        }
        dialect = self._engine.dialect.name
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        statement = insert(LimitRow).values(**values)
        statement = statement.on_conflict_do_update(
            index_elements=["scope", "scope_id"],
            set_={k: statement.excluded[k] for k in values if k not in ("scope", "scope_id")},
        )
        with translated(self._url):
            async with self._engine.begin() as conn:
                before = await self._limits_of(conn, setting.scope, setting.scope_id)
                await conn.execute(statement)
                await conn.execute(
                    insert(AuditRow).values(
                        at=actor.at,
                        actor_key_id=actor.key_id,
                        address=actor.address,
                        action="limits.set",
                        target_type=setting.scope,
                        target_id=setting.scope_id,
                        team_id=setting.scope_id if setting.scope == "team" else None,
                        changes=_changes(before, setting),
                    )
                )
                await record_changes(
                    conn, [(f"{setting.scope}_limits", setting.scope_id)], actor.at
                )
        return before

    async def limits_of(self, scope: str, scope_id: str) -> LimitSetting | None:
        """The limits of one team or key, if any were set."""
        with translated(self._url):
            async with self._engine.connect() as conn:
                return await self._limits_of(conn, scope, scope_id)

    @staticmethod
    async def _limits_of(conn: AsyncConnection, scope: str, scope_id: str) -> LimitSetting | None:
        query = select(LimitRow).where(LimitRow.scope == scope, LimitRow.scope_id == scope_id)
        row = (await conn.execute(query)).first()
        if row is None:
            return None
        return LimitSetting(
            row.scope, row.scope_id, row.rpm, row.tpm, row.max_concurrent, row.monthly_budget_usd
        )

    async def all_limits(self) -> list[LimitSetting]:
        """Every team's and key's limits (for the gateway's in-memory cache)."""
        with translated(self._url):
            async with self._engine.connect() as conn:
                rows = await conn.execute(select(LimitRow))
                return [
                    LimitSetting(
                        r.scope, r.scope_id, r.rpm, r.tpm, r.max_concurrent, r.monthly_budget_usd
                    )
                    for r in rows
                ]

    async def limits_version(self) -> int:
        with translated(self._url):
            async with self._engine.connect() as conn:
                return await current_version(conn)

    async def limit_changes(self, since: int) -> LimitChanges | None:
        with translated(self._url):
            async with self._engine.connect() as conn:
                changes = await changes_since(conn, since)
                if changes is None:
                    return None
                if not changes:
                    return LimitChanges(since, {})
                found: dict[tuple[str, str], LimitSetting | None] = {
                    (c.scope.removesuffix("_limits"), c.ref): None
                    for c in changes
                    if c.scope.endswith("_limits")
                }
                for scope, scope_id in list(found):
                    found[(scope, scope_id)] = await self._limits_of(conn, scope, scope_id)
        return LimitChanges(changes[-1].version, found)


_LIMIT_FIELDS = ("rpm", "tpm", "max_concurrent", "monthly_budget_usd")


def _changes(before: LimitSetting | None, after: LimitSetting) -> dict[str, list[Any]]:
    old = {f: getattr(before, f) if before else None for f in _LIMIT_FIELDS}
    return {f: [old[f], getattr(after, f)] for f in _LIMIT_FIELDS if old[f] != getattr(after, f)}


def _upsert(statement: Any) -> Any:
    """``statement`` (an insert) keeping the first record of a request id, unless that one is
    a lost-request estimate (see write_usage)."""
    return statement.on_conflict_do_update(
        index_elements=["request_id"],
        set_={name: statement.excluded[name] for name in _UPDATED},
        where=UsageRow.outcome == bindparam("lost_outcome", LOST_OUTCOME),
    )


_SQLITE_UPSERT = _upsert(sqlite.insert(UsageRow)).compile(
    dialect=sqlite.dialect(), column_keys=[c.name for c in UsageRow.__table__.columns]
)
"""The SQLite upsert compiled once, run with plain tuples (see write_usage)."""
_SQLITE_SQL = str(_SQLITE_UPSERT)
_SQLITE_ORDER = tuple(_SQLITE_UPSERT.positiontup or ())


def _sqlite_row(record: Any) -> tuple[Any, ...]:
    """A record as the SQLite upsert's parameters, in their order."""
    values: list[Any] = []
    for name in _SQLITE_ORDER:
        if name == "day":
            values.append(day_of(record.time))
        elif name == "time":
            values.append(sqlite_time(record.time))
        elif name == "lost_outcome":
            values.append(LOST_OUTCOME)
        else:
            values.append(getattr(record, name))
    return tuple(values)


def _row(record: Any) -> dict[str, Any]:
    values = {name: getattr(record, name) for name in _COLUMNS}
    values["day"] = day_of(record.time)
    return values


def _conditions(where: UsageFilter) -> list[Any]:
    conditions: list[Any] = [UsageRow.time >= where.since]
    if where.until is not None:
        conditions.append(UsageRow.time < where.until)
    if where.team_id is not None:
        conditions.append(UsageRow.team_id == where.team_id)
    if where.key_ids is not None:
        conditions.append(UsageRow.key_id.in_(sorted(where.key_ids)))
    if where.user_id is not None:
        conditions.append(UsageRow.user_id == where.user_id)
    if where.model is not None:
        conditions.append(UsageRow.model == where.model)
    return conditions

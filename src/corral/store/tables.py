"""The SQL schema (SQLAlchemy 2 declarative); migrations under store/migrations create it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from corral.principals import Principal, Role
from corral.store.records import ApiKey, AuditEntry, TargetType, Team, User

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
}

LIVE = text("deleted_at IS NULL")


def sqlite_time(value: float) -> str:
    """Unix seconds as UtcTime stores them in SQLite: naive UTC text in SQLAlchemy's format."""
    return datetime.fromtimestamp(value, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


class UtcTime(TypeDecorator[float]):
    """Unix seconds in Python, a UTC timestamp in the database (readable in SQL and reports)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: float | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        moment = datetime.fromtimestamp(value, UTC)
        # SQLite stores the text without a zone; keep it naive UTC so its strings sort by time.
        return moment.replace(tzinfo=None) if dialect.name == "sqlite" else moment

    def process_result_value(self, value: Any, dialect: Dialect) -> float | None:
        if value is None:
            return None
        moment: datetime = value
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return moment.timestamp()


Json = JSON().with_variant(JSONB(), "postgresql")
AuditId = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class TeamRow(Base):
    __tablename__ = "teams"
    __table_args__ = (
        Index("uq_teams_live_name", "name", unique=True, sqlite_where=LIVE, postgresql_where=LIVE),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(63))
    description: Mapped[str] = mapped_column(String(500))
    created_at: Mapped[float] = mapped_column(UtcTime)
    deleted_at: Mapped[float | None] = mapped_column(UtcTime)
    max_key_lifetime: Mapped[int | None] = mapped_column(BigInteger)

    def record(self) -> Team:
        return Team(
            self.id,
            self.name,
            self.description,
            self.created_at,
            self.deleted_at,
            self.max_key_lifetime,
        )


class UserRow(Base):
    __tablename__ = "users"
    __table_args__ = (
        Index(
            "uq_users_live_email", "email", unique=True, sqlite_where=LIVE, postgresql_where=LIVE
        ),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    team_id: Mapped[str] = mapped_column(ForeignKey("teams.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(254))
    role: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[float] = mapped_column(UtcTime)
    deleted_at: Mapped[float | None] = mapped_column(UtcTime)

    def record(self) -> User:
        return User(
            self.id,
            self.team_id,
            self.name,
            self.email,
            Role(self.role),
            self.created_at,
            self.deleted_at,
        )


class KeyRow(Base):
    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    display: Mapped[str] = mapped_column(String(16))
    team_id: Mapped[str] = mapped_column(ForeignKey("teams.id"), index=True)
    user_id: Mapped[str | None] = mapped_column(ForeignKey("users.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    allowed_models: Mapped[list[str] | None] = mapped_column(Json)
    expires_at: Mapped[float | None] = mapped_column(UtcTime)
    created_at: Mapped[float] = mapped_column(UtcTime)
    created_by: Mapped[str] = mapped_column(String(40))
    last_used_at: Mapped[float | None] = mapped_column(UtcTime)
    revoked_at: Mapped[float | None] = mapped_column(UtcTime)

    def record(self) -> ApiKey:
        models = None if self.allowed_models is None else frozenset(self.allowed_models)
        return ApiKey(
            id=self.id,
            team_id=self.team_id,
            user_id=self.user_id,
            name=self.name,
            display=self.display,
            allowed_models=models,
            expires_at=self.expires_at,
            created_at=self.created_at,
            created_by=self.created_by,
            last_used_at=self.last_used_at,
            revoked_at=self.revoked_at,
        )

    def principal(self, owner_role: str | None, team_name: str | None = None) -> Principal:
        """The principal this key stands for: its owner's role (developer for a team key)."""
        return Principal(
            key_id=self.id,
            role=Role(owner_role) if owner_role is not None else Role.DEVELOPER,
            team_id=self.team_id,
            user_id=self.user_id,
            allowed_models=None if self.allowed_models is None else frozenset(self.allowed_models),
            expires_at=self.expires_at,
            team_name=team_name,
        )


class AuditRow(Base):
    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_team_at", "team_id", "at"),)

    id: Mapped[int] = mapped_column(AuditId, primary_key=True, autoincrement=True)
    at: Mapped[float] = mapped_column(UtcTime, index=True)
    actor_key_id: Mapped[str] = mapped_column(String(40), index=True)
    address: Mapped[str | None] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(40))
    target_type: Mapped[str] = mapped_column(String(20))
    target_id: Mapped[str] = mapped_column(String(40), index=True)
    team_id: Mapped[str | None] = mapped_column(String(40))
    changes: Mapped[dict[str, list[Any]]] = mapped_column(Json)

    def record(self) -> AuditEntry:
        changes = {
            name: (self.changes[name][0], self.changes[name][1]) for name in sorted(self.changes)
        }
        return AuditEntry(
            id=self.id,
            at=self.at,
            actor_key_id=self.actor_key_id,
            address=self.address,
            action=self.action,
            target_type=cast(TargetType, self.target_type),
            target_id=self.target_id,
            team_id=self.team_id,
            changes=changes,
        )


class MetaRow(Base):
    __tablename__ = "corral_meta"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


metadata = Base.metadata

"""The plain records the Store port speaks: teams, users, API keys, audit entries and queries."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from enum import Enum
from typing import Any, Literal

from corral.principals import Principal, Role

JsonValue = Any
"""A value that survives ``json.dumps`` (str, number, bool, None, lists and dicts of those)."""

Changes = Mapping[str, tuple[JsonValue, JsonValue]]
"""An audit entry's before/after of the fields a change touched: ``{field: (before, after)}``."""

TargetType = Literal["team", "user", "key"]


def new_id(kind: str) -> str:
    """A fresh, unguessable record id such as ``team_3f9a0c1d2b7e4a55``."""
    return f"{kind}_{secrets.token_hex(8)}"


def iso(at: float | None) -> str | None:
    """``at`` (Unix seconds) as an ISO 8601 UTC timestamp, for people and the audit log."""
    if at is None:
        return None
    return datetime.fromtimestamp(at, UTC).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class Actor:
    """Who makes a change, as the audit log records it: a key id (never the key) and an address."""

    key_id: str
    at: float
    address: str | None = None


SYSTEM = "system"
"""The actor key id of changes Corral makes itself (the first-start bootstrap)."""


@dataclass(frozen=True, slots=True)
class Team:
    """A group of developers that owns keys (and, later, budgets)."""

    id: str
    name: str
    description: str
    created_at: float
    deleted_at: float | None = None
    max_key_lifetime: int | None = None
    """The longest a new key of this team may live, in seconds (None: no team maximum)."""


def sooner(*moments: float | None) -> float | None:
    """The earliest of these moments (Unix seconds); None, meaning never, only when all are."""
    known = [m for m in moments if m is not None]
    return min(known) if known else None


class Keep(Enum):
    """The value of a change's field that leaves the stored one as it is."""

    KEEP = "keep"


KEEP = Keep.KEEP


@dataclass(frozen=True, slots=True)
class TeamChange:
    """What a team update changes; a field left ``KEEP`` stays as it is."""

    description: str | Keep = KEEP
    max_key_lifetime: int | Keep | None = KEEP
    """Seconds; None removes the team's maximum."""

    def applied_to(self, team: Team) -> Team:
        """``team`` with this change made."""
        return replace(
            team,
            description=team.description if self.description is KEEP else self.description,
            max_key_lifetime=(
                team.max_key_lifetime if self.max_key_lifetime is KEEP else self.max_key_lifetime
            ),
        )


@dataclass(frozen=True, slots=True)
class User:
    """A person in one team, with the role every key of theirs carries."""

    id: str
    team_id: str
    name: str
    email: str | None
    role: Role
    created_at: float
    deleted_at: float | None = None


@dataclass(frozen=True, slots=True)
class KeyMaterial:
    """What is stored of a new key's secret: its keyed hash and its display form, never the key."""

    key_hash: str
    display: str


@dataclass(frozen=True, slots=True)
class KeySpec:
    """What a new key is for: its team, optional owner, name, model allowlist and expiry."""

    team_id: str
    user_id: str | None
    name: str
    allowed_models: frozenset[str] | None = None
    expires_at: float | None = None


@dataclass(frozen=True, slots=True)
class ApiKey:
    """An API key as the admin API shows it: everything but the secret and its hash."""

    id: str
    team_id: str
    user_id: str | None
    name: str
    display: str
    allowed_models: frozenset[str] | None
    expires_at: float | None
    created_at: float
    created_by: str
    last_used_at: float | None = None
    revoked_at: float | None = None

    def state(self, now: float) -> Literal["active", "revoked", "expired"]:
        """Whether the key works at ``now``."""
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and now >= self.expires_at:
            return "expired"
        return "active"

    def successor(self, expires_at: float | None = None) -> KeySpec:
        """The spec of the key that replaces this one on rotation: the same team, owner, name
        and models, and this key's expiry (``expires_at`` instead, when it is sooner)."""
        expiry = sooner(self.expires_at, expires_at)
        return KeySpec(self.team_id, self.user_id, self.name, self.allowed_models, expiry)


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One admin change: who, what, when, from where, and before/after of the changed fields."""

    id: int
    at: float
    actor_key_id: str
    address: str | None
    action: str
    target_type: TargetType
    target_id: str
    team_id: str | None
    changes: Changes


@dataclass(frozen=True, slots=True)
class AuditQuery:
    """Which audit entries to read; every filter is optional and they combine with AND.

    Entries come newest first, paged with ``before_id``, or oldest first (``oldest_first``),
    paged with ``after_id`` — the order an export wants.
    """

    since: float | None = None
    until: float | None = None
    actor_key_id: str | None = None
    action: str | None = None
    target_id: str | None = None
    team_id: str | None = None
    before_id: int | None = None
    after_id: int | None = None
    oldest_first: bool = False
    limit: int = 100


@dataclass(frozen=True, slots=True)
class KeyChanges:
    """What changed in the key directory since a version: keys that now work (hash →
    principal) and hashes of keys that no longer do. ``version`` is the newest one applied."""

    version: int
    active: Mapping[str, Principal]
    gone: frozenset[str]


KeyState = Literal["active", "revoked", "expired"]


@dataclass(frozen=True, slots=True)
class Listing:
    """Which page of a list to read (keyset pagination: no offset, so a page costs the same
    however deep it is): at most ``limit`` records that sort after ``after`` — the (sort value,
    id) of the last record of the page before — and whose names start with ``name_prefix``."""

    limit: int | None = None
    after: tuple[Any, str] | None = None
    name_prefix: str | None = None

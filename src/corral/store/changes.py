"""How a store change becomes its audit entry: the audited fields of each record and their diff."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from corral.store.records import (
    ApiKey,
    Changes,
    JsonValue,
    TargetType,
    Team,
    User,
    iso,
)

BOOTSTRAP_META = "bootstrapped_at"
"""The meta entry that marks the first-start bootstrap as done."""


@dataclass(frozen=True, slots=True)
class PendingAudit:
    """An audit entry about to be written in the same transaction as the change it describes."""

    action: str
    target_type: TargetType
    target_id: str
    team_id: str | None
    changes: Changes = field(default_factory=dict)


def team_fields(team: Team | None) -> dict[str, JsonValue]:
    """The audited fields of a team (None: it did not exist)."""
    if team is None:
        return {}
    return {
        "name": team.name,
        "description": team.description,
        "max_key_lifetime": team.max_key_lifetime,
        "deleted_at": iso(team.deleted_at),
    }


def user_fields(user: User | None) -> dict[str, JsonValue]:
    """The audited fields of a user (None: it did not exist)."""
    if user is None:
        return {}
    return {
        "team_id": user.team_id,
        "name": user.name,
        "email": user.email,
        "role": user.role.value,
        "deleted_at": iso(user.deleted_at),
    }


def key_fields(key: ApiKey | None) -> dict[str, JsonValue]:
    """The audited fields of a key: never its secret or hash; its display form is safe to show."""
    if key is None:
        return {}
    models = None if key.allowed_models is None else sorted(key.allowed_models)
    return {
        "team_id": key.team_id,
        "user_id": key.user_id,
        "name": key.name,
        "display": key.display,
        "allowed_models": models,
        "expires_at": iso(key.expires_at),
        "revoked_at": iso(key.revoked_at),
    }


def diff(before: Mapping[str, JsonValue], after: Mapping[str, JsonValue]) -> Changes:
    """The fields whose value differs between two views, as ``{field: (before, after)}``."""
    changed: dict[str, tuple[JsonValue, JsonValue]] = {}
    for name in sorted(set(before) | set(after)):
        old, new = before.get(name), after.get(name)
        if old != new:
            changed[name] = (old, new)
    return changed


def team_audit(action: str, before: Team | None, after: Team) -> PendingAudit:
    """The audit entry for a team going from ``before`` to ``after``."""
    return PendingAudit(
        action, "team", after.id, after.id, diff(team_fields(before), team_fields(after))
    )


def user_audit(action: str, before: User | None, after: User) -> PendingAudit:
    """The audit entry for a user going from ``before`` to ``after``."""
    changes = diff(user_fields(before), user_fields(after))
    return PendingAudit(action, "user", after.id, after.team_id, changes)


def key_audit(
    action: str, before: ApiKey | None, after: ApiKey, **extra: tuple[JsonValue, JsonValue]
) -> PendingAudit:
    """The audit entry for a key going from ``before`` to ``after`` (plus ``extra`` changes)."""
    changes = {**diff(key_fields(before), key_fields(after)), **extra}
    return PendingAudit(action, "key", after.id, after.team_id, changes)


def team_busy(name: str, users: int, keys: int) -> str:
    """Why a team cannot be deleted yet, and what to do about it."""
    return (
        f"team {name!r} still has {users} user(s) and {keys} active key(s); remove the users "
        "and revoke the keys first, or delete it with force=true to do both"
    )

"""Who may do what: the admin API's RBAC as a pure function of role × action × scope."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from corral.principals import Principal, Role


class Action(StrEnum):
    """Everything the admin API can be asked to do."""

    ME_READ = "me.read"
    TEAM_CREATE = "team.create"
    TEAM_LIST = "team.list"
    TEAM_READ = "team.read"
    TEAM_UPDATE = "team.update"
    TEAM_DELETE = "team.delete"
    USER_CREATE = "user.create"
    USER_LIST = "user.list"
    USER_READ = "user.read"
    USER_UPDATE = "user.update"
    USER_DELETE = "user.delete"
    KEY_CREATE = "key.create"
    KEY_LIST = "key.list"
    KEY_READ = "key.read"
    KEY_REVOKE = "key.revoke"
    KEY_ROTATE = "key.rotate"
    AUDIT_READ = "audit.read"
    USAGE_READ = "usage.read"
    LIMITS_READ = "limits.read"
    LIMITS_UPDATE = "limits.update"


@dataclass(frozen=True, slots=True)
class Subject:
    """Who asks: the role, team and user behind the calling key."""

    role: Role
    team_id: str | None = None
    user_id: str | None = None

    @classmethod
    def of(cls, principal: Principal) -> Subject:
        return cls(principal.role, principal.team_id, principal.user_id)


@dataclass(frozen=True, slots=True)
class Scope:
    """What an action touches. ``None`` for ``team_id`` means "every team" (platform-wide).

    ``user_id`` is the user acted on or owning the key acted on (None: a team's service key, or
    a list not narrowed to one user); ``role`` is that user's role; ``grants`` is the role a
    change would give someone.
    """

    team_id: str | None = None
    user_id: str | None = None
    role: Role | None = None
    grants: Role | None = None


@dataclass(frozen=True, slots=True)
class Decision:
    """Allowed or not, and why (the reason is shown to the caller on a 403)."""

    allowed: bool
    reason: str


ANYWHERE = Scope()

_DEVELOPER_TEAM = {Action.TEAM_LIST, Action.TEAM_READ, Action.LIMITS_READ}
_DEVELOPER_SELF = {
    Action.USER_LIST,
    Action.USER_READ,
    Action.KEY_CREATE,
    Action.KEY_LIST,
    Action.KEY_READ,
    Action.KEY_REVOKE,
    Action.KEY_ROTATE,
    Action.USAGE_READ,
}


def decide(subject: Subject, action: Action, scope: Scope) -> Decision:
    """May ``subject`` do ``action`` on ``scope``?

    - platform-admin: everything.
    - team-admin: inside their own team, everything about users and keys except touching a
      platform-admin or making someone one; read their team and its audit log.
    - developer: read their team (and its limits), themselves, their own keys and their own
      usage; create, rotate and revoke their own keys.
    - anyone: read who they are (``me.read``).
    """
    if subject.role is Role.PLATFORM_ADMIN or action is Action.ME_READ:
        return _allow("allowed")
    if action in (Action.TEAM_CREATE, Action.TEAM_DELETE):
        return _deny("only a platform-admin may create or delete teams")
    if subject.team_id is None or scope.team_id != subject.team_id:
        return _deny("this is outside your team")
    if subject.role is Role.TEAM_ADMIN:
        return _team_admin(scope)
    return _developer(subject, action, scope)


def allowed_somewhere(role: Role, action: Action) -> bool:
    """Whether a role may do ``action`` in any scope at all (the check before loading targets)."""
    own = "team_probe"
    subject = Subject(role, own, "user_probe")
    probes = (
        Scope(own),
        Scope(own, "user_probe", role),
        Scope(own, "user_probe", Role.DEVELOPER, Role.DEVELOPER),
        Scope(own, "user_other", Role.DEVELOPER, Role.DEVELOPER),
    )
    return any(decide(subject, action, scope).allowed for scope in probes)


def _team_admin(scope: Scope) -> Decision:
    if Role.PLATFORM_ADMIN in (scope.role, scope.grants):
        return _deny("a team-admin may not act on or create a platform-admin")
    return _allow("a team-admin manages their own team")


def _developer(subject: Subject, action: Action, scope: Scope) -> Decision:
    if action in _DEVELOPER_TEAM:
        return _allow("a developer may see their own team")
    if action not in _DEVELOPER_SELF:
        return _deny("only a team-admin or platform-admin may do this")
    if subject.user_id is not None and scope.user_id == subject.user_id:
        return _allow("a developer manages their own keys")
    return _deny("a developer may only see themselves and act on their own keys")


def _allow(reason: str) -> Decision:
    return Decision(True, reason)


def _deny(reason: str) -> Decision:
    return Decision(False, reason)

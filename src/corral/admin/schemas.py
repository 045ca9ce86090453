"""The admin API's request and response bodies (pydantic), which the OpenAPI document describes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt

from corral.admin.paging import PageQuery
from corral.principals import Role
from corral.store.records import ApiKey, AuditEntry, Team, User

TEAM_NAME = r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$"
PRINTABLE = r"^[^\x00-\x1f\x7f]+$"
EMAIL = r"^[^@\s\x00-\x1f\x7f]{1,64}@[^@\s\x00-\x1f\x7f]{1,189}$"
NO_NUL = r"^[^\x00]*$"
PATTERN_HINTS = {
    TEAM_NAME: "use lower-case letters, digits and hyphens, starting and ending with a letter or "
    "digit, at most 63 (e.g. search-ranking)",
    PRINTABLE: "must not be empty or contain control characters (line breaks, tabs, NUL)",
    EMAIL: "is not an e-mail address (name@domain)",
    NO_NUL: "must not contain NUL characters",
}
"""What to say, instead of the regular expression, when a value does not match one."""
STORE_INT_MAX = 2**63 - 1
"""The largest integer the store's BIGINT columns hold."""
MAX_BUDGET_USD = 1e15
MAX_GRACE = 7 * 86400
MAX_LIFETIME = 5 * 365 * 86400
MIN_LIFETIME = 60

TeamName = Annotated[
    str,
    Field(
        pattern=TEAM_NAME,
        max_length=63,
        description="Lower-case letters, digits and inner hyphens, at most 63 (like a DNS label).",
        examples=["search-ranking"],
    ),
]
Label = Annotated[str, Field(min_length=1, max_length=100, pattern=PRINTABLE)]
Ref = Annotated[
    str,
    Field(min_length=1, max_length=254, pattern=PRINTABLE, description="An id, name or e-mail."),
]
Filter = Annotated[str, Field(max_length=40, pattern=PRINTABLE)]
ModelName = Annotated[str, Field(min_length=1, max_length=200, pattern=PRINTABLE)]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Empty(_In):
    """No input."""


# -- requests --------------------------------------------------------------------------------


KeyLifetime = Annotated[
    StrictInt | None,
    Field(
        ge=MIN_LIFETIME,
        le=MAX_LIFETIME,
        description="The longest a new key of the team may live, in seconds (null: no maximum; "
        "only a platform-admin may set a longer one or remove it).",
    ),
]


class TeamCreate(_In):
    name: TeamName
    description: str = Field(
        "", max_length=500, pattern=NO_NUL, description="What the team is for."
    )
    max_key_lifetime: KeyLifetime = None


class TeamUpdate(_In):
    """Only the fields given change."""

    description: str = Field(
        "", max_length=500, pattern=NO_NUL, description="What the team is for."
    )
    max_key_lifetime: KeyLifetime = None


class TeamDelete(_In):
    force: bool = Field(False, description="Also remove the team's users and revoke its keys.")


class UserCreate(_In):
    name: str = Field(min_length=1, max_length=200, pattern=PRINTABLE, examples=["Ada Lovelace"])
    email: str | None = Field(None, max_length=254, pattern=EMAIL, examples=["ada@example.com"])
    role: Role = Field(Role.DEVELOPER, description="What the user's keys may do.")
    team: Ref | None = Field(None, description="Team id or name; default: the caller's team.")


class TeamQuery(PageQuery):
    pass


class UserQuery(PageQuery):
    team: Ref | None = Field(None, description="Only this team's users (id or name).")


class UserUpdate(_In):
    role: Role | None = None
    name: str | None = Field(None, min_length=1, max_length=200, pattern=PRINTABLE)


class KeyCreate(_In):
    name: Label = Field(description="What the key is for, e.g. 'ci' or 'laptop'.")
    user: Ref | None = Field(None, description="Owner (id or e-mail); default: the caller.")
    service: StrictBool = Field(False, description="A team key with no owner (team-admins only).")
    team: Ref | None = Field(None, description="Team of a service key; default: the caller's.")
    allowed_models: list[ModelName] | None = Field(
        None, max_length=100, description="Models the key may call; null or absent: all."
    )
    expires_at: datetime | None = Field(None, description="When the key stops working.")
    expires_in: StrictInt | None = Field(
        None,
        ge=MIN_LIFETIME,
        le=MAX_LIFETIME,
        description="Seconds from now until the key stops working.",
    )


class KeyQuery(PageQuery):
    team: Ref | None = Field(None, description="Only this team's keys (id or name).")
    user: Ref | None = Field(None, description="Only this user's keys (id or e-mail).")
    include_inactive: bool = Field(False, description="Also list revoked and expired keys.")
    state: Literal["active", "revoked", "expired"] | None = Field(
        None, description="Only keys in this state (overrides include_inactive)."
    )


class KeyRotate(_In):
    grace_seconds: StrictInt = Field(
        0, ge=0, le=MAX_GRACE, description="How long the old key keeps working (0: revoke now)."
    )


class AuditFilter(_In):
    since: str | None = Field(
        None, max_length=40, description="A duration back from now (24h, 30m, 7d) or a time."
    )
    until: str | None = Field(None, max_length=40, description="Same forms as since.")
    action: Filter | None = Field(None, examples=["key.revoke"])
    actor: Filter | None = Field(None, description="Key id that made the change.")
    target: Filter | None = Field(None, description="Id of the changed record.")
    team: Ref | None = Field(None, description="Team id or name.")


class AuditPage(AuditFilter):
    limit: int = Field(100, ge=1, le=1000)
    before: int | None = Field(
        None, ge=1, le=STORE_INT_MAX, description="Cursor: entries older than this id."
    )


# -- responses -------------------------------------------------------------------------------


class TeamOut(_Out):
    id: str
    name: str
    description: str
    max_key_lifetime: int | None = Field(
        description="The longest a new key of the team may live, in seconds (null: no maximum)."
    )
    created_at: datetime


class UserOut(_Out):
    id: str
    team_id: str
    name: str
    email: str | None
    role: Role
    created_at: datetime


class KeyOut(_Out):
    id: str
    name: str
    display: str = Field(description="The key's prefix and last four characters.")
    team_id: str
    user_id: str | None
    allowed_models: list[str] | None
    state: Literal["active", "revoked", "expired"]
    expires_at: datetime | None
    created_at: datetime
    created_by: str
    last_used_at: datetime | None
    revoked_at: datetime | None


class KeyCreated(KeyOut):
    key: str = Field(description="The secret key. Shown once: store it now.", repr=False)


class KeyRotated(_Out):
    old: KeyOut
    new: KeyCreated


class Change(_Out):
    before: Any
    after: Any


class AuditOut(_Out):
    id: int
    at: datetime
    actor_key_id: str
    address: str | None
    action: str
    target_type: Literal["team", "user", "key"]
    target_id: str
    team_id: str | None
    changes: dict[str, Change]


class Me(_Out):
    key_id: str
    role: Role
    team: TeamOut | None
    user: UserOut | None
    allowed_models: list[str] | None
    expires_at: datetime | None


class TeamList(_Out):
    object: Literal["list"] = "list"
    data: list[TeamOut]
    has_more: bool = False
    next_after: str | None = Field(None, description="Pass as after= for the next page.")


class UserList(_Out):
    object: Literal["list"] = "list"
    data: list[UserOut]
    has_more: bool = False
    next_after: str | None = Field(None, description="Pass as after= for the next page.")


class KeyList(_Out):
    object: Literal["list"] = "list"
    data: list[KeyOut]
    has_more: bool = False
    next_after: str | None = Field(None, description="Pass as after= for the next page.")


class AuditList(_Out):
    object: Literal["list"] = "list"
    data: list[AuditOut]
    has_more: bool
    next_before: int | None = Field(description="Pass as before= for the next (older) page.")


class ErrorBody(_Out):
    message: str
    type: str
    param: str | None
    code: str | None


class ErrorEnvelope(_Out):
    error: ErrorBody


# -- records → responses ---------------------------------------------------------------------


def moment(at: float | None) -> datetime | None:
    """Unix seconds as an aware UTC datetime."""
    return None if at is None else datetime.fromtimestamp(at, UTC)


def _at(at: float) -> datetime:
    return datetime.fromtimestamp(at, UTC)


def team_out(team: Team) -> TeamOut:
    return TeamOut(
        id=team.id,
        name=team.name,
        description=team.description,
        max_key_lifetime=team.max_key_lifetime,
        created_at=_at(team.created_at),
    )


def user_out(user: User) -> UserOut:
    return UserOut(
        id=user.id,
        team_id=user.team_id,
        name=user.name,
        email=user.email,
        role=user.role,
        created_at=_at(user.created_at),
    )


def key_out(key: ApiKey, now: float) -> KeyOut:
    return KeyOut(**_key_fields(key, now))


def key_created(key: ApiKey, secret: str, now: float) -> KeyCreated:
    return KeyCreated(**_key_fields(key, now), key=secret)


def _key_fields(key: ApiKey, now: float) -> dict[str, Any]:
    return {
        "id": key.id,
        "name": key.name,
        "display": key.display,
        "team_id": key.team_id,
        "user_id": key.user_id,
        "allowed_models": None if key.allowed_models is None else sorted(key.allowed_models),
        "state": key.state(now),
        "expires_at": moment(key.expires_at),
        "created_at": _at(key.created_at),
        "created_by": key.created_by,
        "last_used_at": moment(key.last_used_at),
        "revoked_at": moment(key.revoked_at),
    }


def audit_out(entry: AuditEntry) -> AuditOut:
    return AuditOut(
        id=entry.id,
        at=_at(entry.at),
        actor_key_id=entry.actor_key_id,
        address=entry.address,
        action=entry.action,
        target_type=entry.target_type,
        target_id=entry.target_id,
        team_id=entry.team_id,
        changes={name: Change(before=b, after=a) for name, (b, a) in entry.changes.items()},
    )

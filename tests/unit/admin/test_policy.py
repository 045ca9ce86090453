"""The RBAC policy as a matrix: each role × each action × each kind of scope → allow or deny."""

from __future__ import annotations

import pytest

from corral.admin.policy import Action, Scope, Subject, allowed_somewhere, decide
from corral.principals import Role

P, T, D = Role.PLATFORM_ADMIN, Role.TEAM_ADMIN, Role.DEVELOPER
ROLES = {"P": P, "T": T, "D": D}
OWN, OTHER, ME, MATE = "team_own", "team_other", "user_me", "user_mate"


def scopes(subject_role: Role) -> dict[str, Scope]:
    return {
        "anywhere": Scope(),
        "own team": Scope(OWN),
        "other team": Scope(OTHER),
        "self": Scope(OWN, ME, subject_role),
        "teammate": Scope(OWN, MATE, D),
        "teammate team-admin": Scope(OWN, MATE, T),
        "teammate platform-admin": Scope(OWN, MATE, P),
        "other team's user": Scope(OTHER, "user_far", D),
        "service key of own team": Scope(OWN),
        "grant developer in own team": Scope(OWN, grants=D),
        "grant team-admin in own team": Scope(OWN, grants=T),
        "grant platform-admin in own team": Scope(OWN, grants=P),
        "promote teammate to platform-admin": Scope(OWN, MATE, D, P),
    }


KEY_RULES = {
    "self": "PTD",
    "teammate": "PT",
    "teammate team-admin": "PT",
    "teammate platform-admin": "P",
    "other team's user": "P",
    "service key of own team": "PT",
}

# action → scope → the roles (P, T, D) that are allowed; every other role is denied.
MATRIX: dict[Action, dict[str, str]] = {
    Action.ME_READ: {"anywhere": "PTD", "other team": "PTD"},
    Action.TEAM_CREATE: {"anywhere": "P", "own team": "P"},
    Action.TEAM_LIST: {"anywhere": "P", "own team": "PTD", "other team": "P"},
    Action.TEAM_READ: {"own team": "PTD", "other team": "P"},
    Action.TEAM_DELETE: {"own team": "P", "other team": "P"},
    Action.TEAM_UPDATE: {"anywhere": "P", "own team": "PT", "other team": "P"},
    Action.USER_CREATE: {
        "grant developer in own team": "PT",
        "grant team-admin in own team": "PT",
        "grant platform-admin in own team": "P",
        "other team": "P",
    },
    Action.USER_LIST: {"anywhere": "P", "own team": "PT", "self": "PTD", "other team": "P"},
    Action.USER_READ: {
        "self": "PTD",
        "teammate": "PT",
        "teammate platform-admin": "P",
        "other team's user": "P",
    },
    Action.USER_UPDATE: {
        "self": "PT",
        "teammate": "PT",
        "teammate team-admin": "PT",
        "teammate platform-admin": "P",
        "promote teammate to platform-admin": "P",
        "other team's user": "P",
    },
    Action.USER_DELETE: {
        "teammate": "PT",
        "teammate platform-admin": "P",
        "other team's user": "P",
    },
    Action.KEY_CREATE: KEY_RULES,
    Action.KEY_READ: KEY_RULES,
    Action.KEY_REVOKE: KEY_RULES,
    Action.KEY_ROTATE: KEY_RULES,
    Action.KEY_LIST: {"anywhere": "P", "own team": "PT", "self": "PTD", "other team": "P"},
    Action.AUDIT_READ: {"anywhere": "P", "own team": "PT", "other team": "P"},
    Action.USAGE_READ: {"anywhere": "P", "own team": "PT", "self": "PTD", "other team": "P"},
    Action.LIMITS_READ: {"anywhere": "P", "own team": "PTD", "other team": "P"},
    Action.LIMITS_UPDATE: {"anywhere": "P", "own team": "PT", "other team": "P"},
}

CASES = [
    pytest.param(action, scope, letter, letter in allowed, id=f"{letter}-{action.value}-{scope}")
    for action, row in MATRIX.items()
    for scope, allowed in row.items()
    for letter in "PTD"
]


def test_the_matrix_covers_every_action() -> None:
    assert set(MATRIX) == set(Action)


@pytest.mark.parametrize(("action", "scope_name", "letter", "allowed"), CASES)
def test_matrix(action: Action, scope_name: str, letter: str, allowed: bool) -> None:
    role = ROLES[letter]
    decision = decide(Subject(role, OWN, ME), action, scopes(role)[scope_name])
    assert decision.allowed is allowed, decision.reason
    assert decision.reason


@pytest.mark.parametrize("action", list(Action))
def test_a_teamless_non_admin_may_only_read_itself(action: Action) -> None:
    for role in (T, D):
        decision = decide(Subject(role, None, ME), action, Scope(None, ME, role))
        assert decision.allowed is (action is Action.ME_READ)


@pytest.mark.parametrize("action", list(Action))
def test_allowed_somewhere_matches_the_matrix(action: Action) -> None:
    for letter, role in ROLES.items():
        expected = any(letter in allowed for allowed in MATRIX[action].values())
        assert allowed_somewhere(role, action) is expected, (letter, action)

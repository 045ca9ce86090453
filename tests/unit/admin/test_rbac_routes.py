"""Every admin route enforces RBAC: each role × each route on own/other team → allowed or 403."""

from __future__ import annotations

import re
from typing import Any

import pytest

from corral.admin.app import operations
from unit.admin.world import World

# (name, method, path, body, expected status for P (platform-admin), T (team-admin), D (developer))
# T and D belong to team alpha; "bea" is a developer of team beta; "pat" a platform-admin in alpha.
CASES: list[tuple[str, str, str, Any, tuple[int, int, int]]] = [
    ("me", "GET", "/me", None, (200, 200, 200)),
    ("create team", "POST", "/teams", {"name": "gamma"}, (201, 403, 403)),
    ("list teams", "GET", "/teams", None, (200, 200, 200)),
    ("show own team", "GET", "/teams/alpha", None, (200, 200, 200)),
    ("show other team", "GET", "/teams/beta", None, (200, 403, 403)),
    ("describe own team", "PATCH", "/teams/alpha", {"description": "x"}, (200, 200, 403)),
    ("describe other team", "PATCH", "/teams/beta", {"description": "x"}, (200, 403, 403)),
    ("delete other team", "DELETE", "/teams/beta?force=true", None, (200, 403, 403)),
    (
        "add developer to own team",
        "POST",
        "/users",
        {"name": "N", "team": "alpha"},
        (201, 201, 403),
    ),
    (
        "add platform-admin to own team",
        "POST",
        "/users",
        {"name": "N", "team": "alpha", "role": "platform-admin"},
        (201, 403, 403),
    ),
    ("add user to other team", "POST", "/users", {"name": "N", "team": "beta"}, (201, 403, 403)),
    ("list own team's users", "GET", "/users?team=alpha", None, (200, 200, 200)),
    ("list other team's users", "GET", "/users?team=beta", None, (200, 403, 403)),
    ("show self", "GET", "/users/{D.user}", None, (200, 200, 200)),
    ("show teammate", "GET", "/users/{mate.user}", None, (200, 200, 403)),
    ("show other team's user", "GET", "/users/{bea.user}", None, (200, 403, 403)),
    (
        "make teammate team-admin",
        "PATCH",
        "/users/{mate.user}",
        {"role": "team-admin"},
        (200, 200, 403),
    ),
    (
        "make teammate platform-admin",
        "PATCH",
        "/users/{mate.user}",
        {"role": "platform-admin"},
        (200, 403, 403),
    ),
    (
        "demote a platform-admin",
        "PATCH",
        "/users/{pat.user}",
        {"role": "developer"},
        (200, 403, 403),
    ),
    ("remove teammate", "DELETE", "/users/{mate.user}", None, (200, 200, 403)),
    ("remove other team's user", "DELETE", "/users/{bea.user}", None, (200, 403, 403)),
    ("create own key", "POST", "/keys", {"name": "mine"}, (201, 201, 201)),
    (
        "create teammate's key",
        "POST",
        "/keys",
        {"name": "k", "user": "{mate.user}"},
        (201, 201, 403),
    ),
    (
        "create platform-admin's key",
        "POST",
        "/keys",
        {"name": "k", "user": "{pat.user}"},
        (201, 403, 403),
    ),
    (
        "create other team's key",
        "POST",
        "/keys",
        {"name": "k", "user": "{bea.user}"},
        (201, 403, 403),
    ),
    (
        "create service key",
        "POST",
        "/keys",
        {"name": "ci", "service": True, "team": "alpha"},
        (201, 201, 403),
    ),
    ("list keys", "GET", "/keys", None, (200, 200, 200)),
    ("list own team's keys", "GET", "/keys?team=alpha", None, (200, 200, 403)),
    ("list other team's keys", "GET", "/keys?team=beta", None, (200, 403, 403)),
    ("show own key", "GET", "/keys/{D.key}", None, (200, 200, 200)),
    ("show teammate's key", "GET", "/keys/{mate.key}", None, (200, 200, 403)),
    ("show other team's key", "GET", "/keys/{bea.key}", None, (200, 403, 403)),
    ("revoke teammate's key", "POST", "/keys/{mate.key}/revoke", None, (200, 200, 403)),
    ("revoke service key", "POST", "/keys/{svc.key}/revoke", None, (200, 200, 403)),
    ("revoke platform-admin's key", "POST", "/keys/{pat.key}/revoke", None, (200, 403, 403)),
    ("revoke other team's key", "POST", "/keys/{bea.key}/revoke", None, (200, 403, 403)),
    ("rotate own key", "POST", "/keys/{D.key}/rotate", None, (200, 200, 200)),
    ("rotate platform-admin's key", "POST", "/keys/{pat.key}/rotate", None, (200, 403, 403)),
    ("read audit", "GET", "/audit", None, (200, 200, 403)),
    ("read other team's audit", "GET", "/audit?team=beta", None, (200, 403, 403)),
    ("export audit", "GET", "/audit/export", None, (200, 200, 403)),
    ("own usage", "GET", "/usage", None, (200, 200, 200)),
    ("own usage as CSV", "GET", "/usage.csv", None, (200, 200, 200)),
    ("other team's usage", "GET", "/usage?team=beta", None, (200, 403, 403)),
    ("own limits", "GET", "/limits/me", None, (200, 200, 200)),
    ("own team's limits", "GET", "/teams/alpha/limits", None, (200, 200, 200)),
    ("other team's limits", "GET", "/teams/beta/limits", None, (200, 403, 403)),
    (
        "set own team's budget",
        "POST",
        "/teams/alpha/limits",
        {"monthly_budget_usd": 100},
        (200, 200, 403),
    ),
    (
        "set other team's budget",
        "POST",
        "/teams/beta/limits",
        {"monthly_budget_usd": 100},
        (200, 403, 403),
    ),
    ("change own team's rpm", "PATCH", "/teams/alpha/limits", {"rpm": 60}, (200, 200, 403)),
    ("change other team's rpm", "PATCH", "/teams/beta/limits", {"rpm": 60}, (200, 403, 403)),
]


def _fill(text: str, world: World) -> str:
    for who in world.users:
        text = text.replace(f"{{{who}.user}}", world.users[who].id)
    for who in world.keys:
        text = text.replace(f"{{{who}.key}}", world.keys[who].id)
    return text


def _fill_body(body: Any, world: World) -> Any:
    if isinstance(body, dict):
        return {k: _fill(v, world) if isinstance(v, str) else v for k, v in body.items()}
    return body


@pytest.mark.parametrize(
    ("path", "method", "body", "role", "status"),
    [
        pytest.param(path, method, body, role, statuses[i], id=f"{role}-{name}")
        for name, method, path, body, statuses in CASES
        for i, role in enumerate("PTD")
    ],
)
async def test_route_matrix(
    world: World, path: str, method: str, body: Any, role: str, status: int
) -> None:
    response = await world.call(role, method, _fill(path, world), _fill_body(body, world))
    assert response.status_code == status, response.text
    if status == 403:
        assert response.json()["error"]["type"] == "permission_denied"


def test_the_matrix_reaches_every_route() -> None:
    covered = {(method, path.split("?")[0]) for _, method, path, _, _ in CASES}
    for op in operations():
        pattern = re.compile(re.sub(r"{\w+}", "[^/]+", op.path) + "$")
        assert any(m == op.method and pattern.match(path) for m, path in covered), op.path


async def test_a_developer_sees_only_themselves_and_their_own_keys(world: World) -> None:
    users = (await world.call("D", "GET", "/users")).json()["data"]
    assert [u["id"] for u in users] == [world.users["D"].id]
    keys = (await world.call("D", "GET", "/keys")).json()["data"]
    assert [k["id"] for k in keys] == [world.keys["D"].id]
    teams = (await world.call("D", "GET", "/teams")).json()["data"]
    assert [t["name"] for t in teams] == ["alpha"]


async def test_a_team_admin_lists_their_team_only(world: World) -> None:
    keys = (await world.call("T", "GET", "/keys")).json()["data"]
    assert {k["team_id"] for k in keys} == {world.teams["alpha"].id}
    users = (await world.call("T", "GET", "/users")).json()["data"]
    assert {u["team_id"] for u in users} == {world.teams["alpha"].id}
    audit = (await world.call("T", "GET", "/audit")).json()["data"]
    assert audit
    assert {e["team_id"] for e in audit} == {world.teams["alpha"].id}

"""The admin API's behaviour: authentication, validation, key lifecycle, audit, failures."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping

import httpx
import pytest

from corral.errors import TemporaryError
from corral.principals import Principal
from corral.store.memory import InMemoryStore
from corral.store.records import AuditEntry, AuditQuery
from unit.admin.world import World, build_app, make_world

GARBAGE_AUTH: list[bytes | None] = [
    None,
    b"",
    b"Bearer",
    b"Bearer ",
    b"Basic dXNlcjpwYXNz",
    b"Bearer ck-" + b"A" * 10_000,
    b"Bearer ck-\xff\xfe\xc3\xa9\xe2\x82\xac-not-ascii-at-all",
    "Bearer ck-ünïcödé-ключ-🔑".encode(),
    b"Bearer ck-well-formed-but-unknown-key-000000",
    b"Bearer ' OR '1'='1",
    b"Bearer ck-\x00\x01\x02",
]


@pytest.mark.parametrize("header", GARBAGE_AUTH)
async def test_garbage_authorization_is_401_in_the_envelope(
    world: World, header: bytes | None
) -> None:
    headers = {} if header is None else {"Authorization": header}
    response = await world.http.get("/admin/v1/me", headers=headers)  # type: ignore[arg-type]
    assert response.status_code == 401
    error = response.json()["error"]
    assert error["type"] == "authentication_error"
    assert error["code"] == "invalid_api_key"
    if header:
        assert header.decode("latin-1")[7:] not in response.text or len(header) < 12


async def test_the_scheme_is_case_insensitive(world: World) -> None:
    headers = {"Authorization": f"bearer {world.secrets['D']}"}
    assert (await world.http.get("/admin/v1/me", headers=headers)).status_code == 200


async def test_me_describes_the_calling_key(world: World) -> None:
    me = (await world.call("T", "GET", "/me")).json()
    assert me["key_id"] == world.keys["T"].id
    assert me["role"] == "team-admin"
    assert me["team"]["name"] == "alpha"
    assert me["user"]["email"] == "ada@example.com"
    assert me["allowed_models"] is None


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"name": "'; DROP TABLE teams; --"}, "name"),
        ({"name": "Robert'); DROP TABLE"}, "name"),
        ({"name": "x" * 10_000}, "name"),
        ({"name": "UPPER"}, "name"),
        ({"name": ""}, "name"),
        ({}, "name"),
        ({"name": "ok", "description": "d" * 501}, "description"),
        ({"name": "ok", "colour": "blue"}, "colour"),
        ({"name": 7}, "name"),
    ],
)
async def test_invalid_team_bodies_are_400_naming_the_field(
    world: World, body: object, param: str
) -> None:
    response = await world.call("P", "POST", "/teams", body)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == param
    assert response.json()["error"]["type"] == "invalid_request_error"


@pytest.mark.parametrize(
    ("path", "body", "param"),
    [
        ("/users", {"name": "x" * 201, "team": "alpha"}, "name"),
        ("/users", {"name": "N", "team": "alpha", "role": "superuser"}, "role"),
        ("/users", {"name": "N", "team": "alpha", "email": "not-an-email"}, "email"),
        ("/users", {"name": "line\nbreak", "team": "alpha"}, "name"),
        ("/keys", {"name": "k", "expires_in": 5}, "expires_in"),
        ("/keys", {"name": "k", "expires_at": "2001-01-01T00:00:00Z"}, "expires_at"),
        (
            "/keys",
            {"name": "k", "expires_at": "2999-01-01T00:00:00Z", "expires_in": 3600},
            "expires_in",
        ),
        ("/keys", {"name": "k", "service": True, "user": "ada@example.com"}, "service"),
        ("/keys", {"name": "k", "allowed_models": ["m"] * 101}, "allowed_models"),
        ("/keys", {"name": "k", "allowed_models": [""]}, "allowed_models.0"),
        ("/keys", {"name": "k" * 101}, "name"),
        ("/keys/{key}/rotate", {"grace_seconds": -1}, "grace_seconds"),
    ],
)
async def test_invalid_bodies_are_400_naming_the_field(
    world: World, path: str, body: object, param: str
) -> None:
    response = await world.call("P", "POST", path.replace("{key}", world.keys["D"].id), body)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == param


@pytest.mark.parametrize(
    ("query", "param"),
    [("limit=0", "limit"), ("limit=many", "limit"), ("since=yesterday-ish", "since"), ("x=1", "x")],
)
async def test_invalid_queries_are_400_naming_the_parameter(
    world: World, query: str, param: str
) -> None:
    response = await world.call("P", "GET", f"/audit?{query}")
    assert response.status_code == 400
    assert response.json()["error"]["param"] == param


async def test_malformed_and_oversized_bodies_are_refused(world: World) -> None:
    headers = {**world.auth("P"), "Content-Type": "application/json"}
    bad = await world.http.post("/admin/v1/teams", content=b"{not json", headers=headers)
    assert bad.status_code == 400
    binary = await world.http.post("/admin/v1/teams", content=b"\xff\xfe\x00", headers=headers)
    assert binary.status_code == 400
    big = await world.http.post("/admin/v1/teams", content=b" " * 70_000, headers=headers)
    assert big.status_code == 413


async def test_sql_metacharacters_in_free_text_are_kept_verbatim(world: World) -> None:
    name = "Robert'); DROP TABLE users;-- \" % _"
    created = await world.call("P", "POST", "/users", {"name": name, "team": "alpha"})
    assert created.status_code == 201
    shown = await world.call("P", "GET", f"/users/{created.json()['id']}")
    assert shown.json()["name"] == name


@pytest.mark.parametrize("ref", ["x" * 5000, "%27%20OR%201%3D1", "..%2F..%2Fetc"])
async def test_odd_path_references_are_404(world: World, ref: str) -> None:
    for path in (f"/teams/{ref}", f"/users/{ref}", f"/keys/{ref}"):
        assert (await world.call("P", "GET", path)).status_code == 404


async def test_unknown_routes_and_methods_answer_in_the_envelope(world: World) -> None:
    missing = await world.call("P", "GET", "/nothing-here")
    assert missing.status_code == 404
    assert missing.json()["error"]["type"] == "not_found_error"
    wrong = await world.call("P", "PUT", "/teams")
    assert wrong.status_code == 405
    assert "error" in wrong.json()


async def test_a_new_key_works_at_once_and_a_revoked_one_stops_at_once(world: World) -> None:
    created = await world.call("D", "POST", "/keys", {"name": "laptop"})
    assert created.status_code == 201
    body = created.json()
    secret = body["key"]
    assert secret.startswith("ck-")
    assert body["display"] == f"ck-…{secret[-4:]}"
    headers = {"Authorization": f"Bearer {secret}"}
    assert (await world.http.get("/admin/v1/me", headers=headers)).status_code == 200
    listed = (await world.call("D", "GET", "/keys")).json()
    assert secret not in json.dumps(listed)
    revoked = await world.call("D", "POST", f"/keys/{body['id']}/revoke")
    assert revoked.json()["state"] == "revoked"
    assert (await world.http.get("/admin/v1/me", headers=headers)).status_code == 401
    again = await world.call("D", "POST", f"/keys/{body['id']}/revoke")
    assert again.status_code == 409


async def test_rotation_with_grace_keeps_the_old_key_until_the_grace_ends(world: World) -> None:
    old_secret = world.secrets["D"]
    rotated = await world.call(
        "D", "POST", f"/keys/{world.keys['D'].id}/rotate", {"grace_seconds": 60}
    )
    assert rotated.status_code == 200
    new_secret = rotated.json()["new"]["key"]
    for secret in (old_secret, new_secret):
        me = await world.http.get("/admin/v1/me", headers={"Authorization": f"Bearer {secret}"})
        assert me.status_code == 200
    world.clock.advance(61)
    old = await world.http.get("/admin/v1/me", headers={"Authorization": f"Bearer {old_secret}"})
    assert old.status_code == 401
    new = await world.http.get("/admin/v1/me", headers={"Authorization": f"Bearer {new_secret}"})
    assert new.status_code == 200


async def test_a_key_may_not_grant_more_models_than_it_has(world: World) -> None:
    await world.add_key(
        "narrow", world.users["D"], world.teams["alpha"], allowed_models=frozenset({"a", "b"})
    )
    wider = await world.call("narrow", "POST", "/keys", {"name": "k", "allowed_models": ["a", "c"]})
    assert wider.status_code == 403
    assert wider.json()["error"]["param"] == "allowed_models"
    inherited = await world.call("narrow", "POST", "/keys", {"name": "k"})
    assert inherited.json()["allowed_models"] == ["a", "b"]
    subset = await world.call("narrow", "POST", "/keys", {"name": "k", "allowed_models": ["b"]})
    assert subset.json()["allowed_models"] == ["b"]


async def test_allowlists_are_checked_against_the_catalog_when_given() -> None:
    world = await make_world(known_models=lambda: {"llama", "qwen"})
    try:
        bad = await world.call("P", "POST", "/keys", {"name": "k", "allowed_models": ["gpt-9"]})
        assert bad.status_code == 400
        assert "gpt-9" in bad.json()["error"]["message"]
        good = await world.call("P", "POST", "/keys", {"name": "k", "allowed_models": ["qwen"]})
        assert good.status_code == 201
    finally:
        await world.http.aclose()


async def test_deleting_a_busy_team_needs_force(world: World) -> None:
    refused = await world.call("P", "DELETE", "/teams/beta")
    assert refused.status_code == 409
    assert refused.json()["error"]["param"] == "force"
    done = await world.call("P", "DELETE", "/teams/beta?force=true")
    assert done.status_code == 200
    bea = await world.http.get("/admin/v1/me", headers=world.auth("bea"))
    assert bea.status_code == 401


async def test_role_changes_apply_to_the_users_keys_at_once(world: World) -> None:
    assert (await world.call("mate", "GET", "/audit")).status_code == 403
    await world.call("T", "PATCH", f"/users/{world.users['mate'].id}", {"role": "team-admin"})
    assert (await world.call("mate", "GET", "/audit")).status_code == 200


async def test_every_change_is_audited_with_actor_address_and_diff(world: World) -> None:
    before = await world.store.list_audit(AuditQuery(limit=1000))
    await world.call("T", "POST", "/users", {"name": "Neo", "email": "neo@example.com"})
    await world.call("T", "PATCH", f"/users/{world.users['mate'].id}", {"name": "Moe"})
    await world.call("T", "POST", f"/keys/{world.keys['mate'].id}/revoke")
    entries = (await world.call("T", "GET", "/audit?since=1h&limit=3")).json()["data"]
    assert [e["action"] for e in entries] == ["key.revoke", "user.update", "user.create"]
    assert {e["actor_key_id"] for e in entries} == {world.keys["T"].id}
    assert {e["address"] for e in entries} == {"127.0.0.1"}
    assert entries[1]["changes"] == {"name": {"before": "Mo", "after": "Moe"}}
    after = await world.store.list_audit(AuditQuery(limit=1000))
    assert len(after) == len(before) + 3


async def test_audit_pages_and_exports_as_json_lines(world: World) -> None:
    first = (await world.call("P", "GET", "/audit?limit=4")).json()
    assert first["has_more"] is True
    second = (await world.call("P", "GET", f"/audit?limit=4&before={first['next_before']}")).json()
    assert max(e["id"] for e in second["data"]) < min(e["id"] for e in first["data"])
    export = await world.call("P", "GET", "/audit/export?since=1d")
    assert export.headers["content-type"].startswith("application/x-ndjson")
    lines = [json.loads(line) for line in export.text.splitlines()]
    assert [e["id"] for e in lines] == sorted(e["id"] for e in lines)
    assert len(lines) == len(await world.store.list_audit(AuditQuery(limit=1000)))


async def test_the_canary_key_never_leaks(world: World, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    created = await world.call(
        "T", "POST", "/keys", {"name": "canary", "user": world.users["mate"].id}
    )
    canary, key_id = created.json()["key"], created.json()["id"]
    seen: list[str] = []
    as_canary = {"Authorization": f"Bearer {canary}"}
    for method, path, body in [
        ("GET", "/me", None),
        ("GET", "/audit", None),
        ("POST", "/teams", {"name": canary}),
        ("POST", "/keys", {"name": "x" * 500}),
        ("GET", f"/keys/{canary}", None),
        ("POST", f"/keys/{key_id}/rotate", None),
        ("GET", "/me", None),
    ]:
        response = await world.http.request(
            method, "/admin/v1" + path, headers=as_canary, json=body
        )
        seen.append(response.text)
    seen.append((await world.call("P", "GET", "/audit/export")).text)
    seen.append((await world.call("P", "GET", "/keys?include_inactive=true")).text)
    entries: list[AuditEntry] = await world.store.list_audit(AuditQuery(limit=1000))
    # The test's own client logs its request URLs (httpx); everything the server logged counts.
    server_log = "\n".join(r.getMessage() for r in caplog.records if not r.name.startswith("httpx"))
    for haystack in [*seen, server_log, repr(entries)]:
        assert canary not in haystack
        assert canary[3:20] not in haystack


class BrokenStore(InMemoryStore):
    def __init__(self, failure: Exception) -> None:
        super().__init__()
        self.failure: Exception | None = None
        self._later = failure

    def break_now(self) -> None:
        self.failure = self._later

    async def list_teams(self, listing=None):  # type: ignore[no-untyped-def]
        if self.failure:
            raise self.failure
        return await super().list_teams(listing)

    async def active_keys(self, now: float) -> dict[str, Principal]:
        return await super().active_keys(now)


@pytest.mark.parametrize(
    ("failure", "status"),
    [
        (TemporaryError("the store at db is unavailable", delay=2.0), 503),
        (RuntimeError("boom at 0x1"), 500),
    ],
)
async def test_store_failures_are_answered_in_the_envelope(
    failure: Exception, status: int, caplog: pytest.LogCaptureFixture
) -> None:
    from corral.clock import FakeClock
    from corral.principals import KeyDirectory
    from corral.store.bootstrap import bootstrap_admin_key
    from corral.store.keysync import KeySync

    store, clock = BrokenStore(failure), FakeClock()
    sync = KeySync(store, KeyDirectory(b"s" * 32), clock)
    boot = await bootstrap_admin_key(store, b"s" * 32, clock.now())
    assert boot is not None
    await sync.refresh()
    store.break_now()
    transport = httpx.ASGITransport(app=build_app(store, sync, clock))
    async with httpx.AsyncClient(transport=transport, base_url="http://admin") as http:
        response = await http.get(
            "/admin/v1/teams", headers={"Authorization": f"Bearer {boot.secret}"}
        )
    assert response.status_code == status
    body: Mapping[str, Mapping[str, object]] = response.json()
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert "boom" not in response.text
    if status == 503:
        assert response.headers["Retry-After"] == "2"

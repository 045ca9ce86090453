"""The admin API on a real uvicorn server over SQLite and PostgreSQL: flows, bad input, secrets."""

from __future__ import annotations

import asyncio
import logging
import socket
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from sqlalchemy import text

from corral.store.engine import open_engine
from integration.admin.harness import AdminServer


def raw_request(url: str, header_bytes: bytes) -> int:
    """Send a request with exactly these header bytes; the HTTP status the server answers."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(
            b"GET /admin/v1/me HTTP/1.1\r\nHost: x\r\n"
            + header_bytes
            + b"\r\nConnection: close\r\n\r\n"
        )
        status_line = sock.makefile("rb").readline()
    return int(status_line.split()[1])


def test_a_team_user_and_key_lifecycle_over_http(
    admin_http: httpx.Client, admin_server: AdminServer
) -> None:
    assert admin_http.post("/teams", json={"name": "search"}).status_code == 201
    user = admin_http.post(
        "/users", json={"team": "search", "name": "Ada", "email": "ada@example.com"}
    ).json()
    created = admin_http.post(
        "/keys", json={"name": "laptop", "user": "ada@example.com", "expires_in": 86400}
    )
    assert created.status_code == 201
    key = created.json()
    as_ada = {"Authorization": f"Bearer {key['key']}"}
    me = httpx.get(admin_server.url + "/admin/v1/me", headers=as_ada).json()
    assert (me["user"]["id"], me["role"], me["team"]["name"]) == (user["id"], "developer", "search")
    rotated = httpx.post(
        f"{admin_server.url}/admin/v1/keys/{key['id']}/rotate", headers=as_ada
    ).json()
    assert rotated["old"]["state"] == "revoked"
    assert httpx.get(admin_server.url + "/admin/v1/me", headers=as_ada).status_code == 401
    as_new = {"Authorization": f"Bearer {rotated['new']['key']}"}
    assert httpx.get(admin_server.url + "/admin/v1/me", headers=as_new).status_code == 200
    listed = admin_http.get(
        "/keys", params={"user": "ada@example.com", "include_inactive": "true"}
    ).json()
    assert [k["state"] for k in listed["data"]] == ["active", "revoked"]
    actions = [e["action"] for e in admin_http.get("/audit", params={"since": "1h"}).json()["data"]]
    assert actions[:4] == ["key.rotate", "key.create", "key.create", "user.create"]
    exported = admin_http.get("/audit/export").text.splitlines()
    assert len(exported) >= 8
    assert '"address": "127.0.0.1"' in exported[-1]


@pytest.mark.parametrize(
    "header",
    [
        b"Authorization: Bearer ck-\xff\xfe\x80\x81-raw-bytes",
        "Authorization: Bearer ck-ключ-🔑".encode(),
        b"Authorization: " + b"Bearer ck-" + b"a" * 8000,
        b"Authorization:",
        b"Authorization: Bearer '; DROP TABLE api_keys; --",
        b"Authorization: Bearer ck-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    ],
)
def test_garbage_authorization_headers_on_the_wire_are_401(
    admin_server: AdminServer, header: bytes
) -> None:
    assert raw_request(admin_server.url, header) == 401


def test_an_enormous_header_is_refused_and_the_server_keeps_serving(
    admin_server: AdminServer, admin_http: httpx.Client
) -> None:
    status = raw_request(admin_server.url, b"Authorization: Bearer ck-" + b"a" * 200_000)
    assert 400 <= status < 500
    assert admin_http.get("/me").status_code == 200


def test_sql_metacharacters_and_long_strings_are_never_a_500(admin_http: httpx.Client) -> None:
    attacks = ["'; DROP TABLE teams; --", "x' OR '1'='1", "a" * 10_000, "\x00", "ü" * 64]
    for attack in attacks:
        assert admin_http.post("/teams", json={"name": attack}).status_code == 400
        assert admin_http.post("/users", json={"name": attack, "team": "platform"}).status_code in (
            201,
            400,
        )
        assert admin_http.get("/users", params={"team": attack}).status_code in (400, 404)
        assert admin_http.get("/audit", params={"action": attack}).status_code in (200, 400)
        assert admin_http.get(f"/keys/{quote(attack[:2000], safe='')}").status_code == 404
    assert admin_http.get("/teams").json()["data"][0]["name"] == "platform"


def test_a_restart_keeps_everything_and_does_not_bootstrap_again(admin_server: AdminServer) -> None:
    first_key = admin_server.bootstrap_key
    admin_server.stop()
    again = AdminServer(admin_server.db_url).start()
    try:
        assert again.bootstrap_key is None
        me = httpx.get(again.url + "/admin/v1/me", headers={"Authorization": f"Bearer {first_key}"})
        assert me.json()["role"] == "platform-admin"
    finally:
        again.stop()


def test_a_different_server_secret_is_refused_at_start(admin_server: AdminServer) -> None:
    admin_server.stop()
    with pytest.raises(RuntimeError, match="failed to start") as failed:
        AdminServer(admin_server.db_url, secret=b"another-secret-another-secret-another").start()
    assert "differs" in str(failed.value.__cause__)


def _stored_text(db_url: str) -> str:
    async def dump() -> str:
        engine = open_engine(db_url)
        try:
            async with engine.connect() as conn:
                rows = []
                for table in ("teams", "users", "api_keys", "audit_log", "corral_meta"):
                    rows.extend(
                        str(tuple(row))
                        for row in await conn.execute(text(f"SELECT * FROM {table}"))
                    )
                return "\n".join(rows)
        finally:
            await engine.dispose()

    return asyncio.run(dump())


def test_the_canary_key_never_reaches_logs_errors_audit_or_the_database(
    admin_server: AdminServer, admin_http: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    admin_http.post("/teams", json={"name": "canaries"})
    created = admin_http.post(
        "/keys", json={"name": "canary", "service": True, "team": "canaries"}
    ).json()
    canary = created["key"]
    as_canary = {"Authorization": f"Bearer {canary}"}
    bodies = []
    with httpx.Client(base_url=admin_server.url + "/admin/v1", headers=as_canary) as http:
        for method, path, body in [
            ("GET", "/me", None),
            ("GET", "/audit", None),
            ("POST", "/teams", {"name": "nope"}),
            ("POST", "/keys", {"name": "k", "allowed_models": [""]}),
            ("PATCH", "/users/nobody", {"role": "developer"}),
        ]:
            bodies.append(http.request(method, path, json=body).text)
    bodies.append(admin_http.post(f"/keys/{created['id']}/revoke").text)
    bodies.append(httpx.get(admin_server.url + "/admin/v1/me", headers=as_canary).text)
    bodies.append(admin_http.get("/audit/export").text)
    bodies.append(admin_http.get("/keys", params={"include_inactive": "true"}).text)
    admin_server.stop()  # flushes last-used times and closes the store
    server_log = "\n".join(r.getMessage() for r in caplog.records if not r.name.startswith("httpx"))
    assert "POST /admin/v1/keys" in server_log  # the server's access log was captured
    stored = _stored_text(admin_server.db_url)
    assert created["display"] in stored
    files = b""
    if admin_server.db_url.startswith("sqlite"):
        db_file = Path(admin_server.db_url.split("///", 1)[1])
        files = b"".join(p.read_bytes() for p in db_file.parent.glob(db_file.name + "*"))
    for haystack in [*bodies, server_log, stored, files.decode("latin-1")]:
        assert canary not in haystack
        assert canary[3:20] not in haystack

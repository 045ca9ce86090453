"""The portal's guards over a mocked admin API: sign-in, cookies, CSRF, roles, safe redirects."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.testclient import TestClient

from corral.errors import InvalidRequest
from corral.portal.app import build_portal_app
from corral.portal.developer import chat_body
from corral.portal.settings import PortalSettings

DEV_KEY = "ck-developer-key-0123456789"
ADMIN_KEY = "ck-platform-admin-key-012345"
REVOKED: set[str] = set()
MINTED: dict[str, str] = {}  # session key -> the key that minted it


def admin_api(request: httpx.Request) -> httpx.Response:
    """A stand-in for /admin/v1 and /v1 that knows two keys and mints session keys."""
    key = request.headers.get("authorization", "").removeprefix("Bearer ")
    roles = {DEV_KEY: "developer", ADMIN_KEY: "platform-admin"}
    roles |= {minted: roles[parent] for minted, parent in MINTED.items()}
    if key not in roles or key in REVOKED or MINTED.get(key) in REVOKED:  # revocation cascades
        return httpx.Response(401, json={"error": {"message": "the API key is not valid"}})
    path = request.url.path
    if path == "/admin/v1/me":
        user = {"id": "user_1", "name": "Dev", "email": "dev@example.com"}
        team = {"id": "team_1", "name": "ml"}
        return httpx.Response(
            200, json={"key_id": "key_1", "role": roles[key], "user": user, "team": team}
        )
    if path == "/v1/models":
        return httpx.Response(200, json={"data": [{"id": "m"}]})
    if path == "/admin/v1/keys" and request.method == "POST":
        minted = f"ck-session-{len(MINTED)}-0123456789"
        MINTED[minted] = key
        return httpx.Response(201, json={"key": minted, "id": minted, "expires_at": None})
    if path.startswith("/admin/v1/keys/ck-session-") and path.endswith("/revoke"):
        REVOKED.add(path.split("/")[4])
        return httpx.Response(200, json={})
    if path == "/admin/v1/keys":
        return httpx.Response(200, json={"data": []})
    return httpx.Response(404, json={"error": {"message": "no such route"}})


@pytest.fixture
def client() -> Iterator[TestClient]:
    REVOKED.clear()
    MINTED.clear()
    http = httpx.AsyncClient(transport=httpx.MockTransport(admin_api))
    portal = build_portal_app(
        PortalSettings(),
        admin_base="http://corral/admin/v1",
        api_base="http://corral/v1",
        http=http,
        session_secret=b"unit-test-secret-unit-test-secret",
    )
    app = Starlette(routes=[Mount("/ui", app=portal)])
    with TestClient(app, base_url="https://corral.test", follow_redirects=False) as tc:
        yield tc
    asyncio.run(http.aclose())


def csrf_token(html: str) -> str:
    match = re.search(r'<meta name="csrf-token" content="([0-9a-f]+)">', html)
    assert match is not None
    return match.group(1)


def sign_in(client: TestClient, key: str, nxt: str = "/ui/") -> httpx.Response:
    token = csrf_token(client.get("/ui/signin").text)
    return client.post("/ui/signin/key", data={"key": key, "csrf_token": token, "next": nxt})


def test_pages_send_strangers_to_sign_in(client: TestClient) -> None:
    response = client.get("/ui/keys")
    assert response.status_code == 303
    assert response.headers["location"] == "/ui/signin?next=/ui/keys"


def test_session_cookie_flags(client: TestClient) -> None:
    response = client.get("/ui/signin")
    cookie = response.headers["set-cookie"]
    assert cookie.startswith("corral_session=")
    for flag in ("HttpOnly", "SameSite=lax", "Path=/ui", "Secure"):
        assert flag in cookie
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]


def test_key_sign_in_needs_the_csrf_token(client: TestClient) -> None:
    client.get("/ui/signin")
    refused = client.post("/ui/signin/key", data={"key": DEV_KEY})
    assert refused.status_code == 403
    assert "Form expired" in refused.text
    response = sign_in(client, DEV_KEY, "/ui/keys")
    assert (response.status_code, response.headers["location"]) == (303, "/ui/keys")
    assert DEV_KEY not in response.headers["set-cookie"]
    assert client.get("/ui/keys").status_code == 200


def test_a_foreign_origin_is_refused_even_with_the_token(client: TestClient) -> None:
    token = csrf_token(client.get("/ui/signin").text)
    response = client.post(
        "/ui/signin/key",
        data={"key": DEV_KEY, "csrf_token": token},
        headers={"origin": "https://evil.example"},
    )
    assert response.status_code == 403


def test_the_session_id_changes_at_sign_in(client: TestClient) -> None:
    before = csrf_token(client.get("/ui/signin").text)
    sign_in(client, DEV_KEY)
    after = csrf_token(client.get("/ui/keys").text)
    assert before != after


@pytest.mark.parametrize("nxt", ["//evil.example/", "https://evil.example/", "/other", "/ui\\x"])
def test_sign_in_never_redirects_off_the_portal(client: TestClient, nxt: str) -> None:
    assert sign_in(client, DEV_KEY, nxt).headers["location"] == "/ui/"


def test_a_bad_key_is_refused_on_the_sign_in_page(client: TestClient) -> None:
    response = sign_in(client, "ck-unknown-key-0000000000")
    assert response.status_code == 401
    assert "not valid" in response.text
    assert "ck-unknown-key-0000000000" not in response.text


def test_developers_get_a_403_page_for_admin_pages(client: TestClient) -> None:
    sign_in(client, DEV_KEY)
    for path in ("/ui/team", "/ui/platform"):
        response = client.get(path)
        assert response.status_code == 403
        assert "Not allowed" in response.text
        assert response.headers["content-type"].startswith("text/html")


def test_mutations_without_the_token_are_refused_when_signed_in(client: TestClient) -> None:
    sign_in(client, DEV_KEY)
    assert client.post("/ui/keys", data={"name": "x"}).status_code == 403
    assert client.post("/ui/playground/chat", json={"model": "m"}).status_code == 403


def test_a_revoked_session_key_signs_the_browser_out(client: TestClient) -> None:
    sign_in(client, DEV_KEY)
    REVOKED.add(DEV_KEY)
    response = client.get("/ui/keys")
    assert (response.status_code, response.headers["location"]) == (303, "/ui/signin?expired=1")
    assert client.get("/ui/keys").status_code == 303


def test_unknown_pages_get_the_portal_404(client: TestClient) -> None:
    response = client.get("/ui/nope")
    assert response.status_code == 404
    assert "There is no such page" in response.text


def test_static_files_forbid_type_sniffing(client: TestClient) -> None:
    response = client.get("/ui/static/portal.js")
    assert response.status_code == 200
    assert response.headers["x-content-type-options"] == "nosniff"


@pytest.mark.parametrize(
    "body",
    [
        b'{"model":"m","messages":' + b"[" * 2000 + b"]" * 2000 + b"}",
        b'{"model":"m","messages":[{"role":"user","content":"hi"}],"temperature":"hot"}',
        b'{"model":"m","messages":[{"role":"user","content":"hi"}],"max_tokens":1e300}',
    ],
)
def test_hostile_playground_bodies_are_refused_not_500(body: bytes) -> None:
    with pytest.raises(InvalidRequest):
        chat_body(body)

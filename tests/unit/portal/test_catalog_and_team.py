"""The catalog offers what each model can do, its links resolve, and the team page shows the
team's own limits to a platform-admin looking at another team."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.testclient import TestClient

from corral.catalog import FakeEngineConfig, LocalEngineConfig, ModelSpec
from corral.portal.app import build_portal_app
from corral.portal.settings import PortalSettings

ADMIN_KEY = "ck-platform-admin-key-012345"
MODELS = [
    ModelSpec(name="chat-model", engine=FakeEngineConfig()),
    ModelSpec(name="embed-model", engine=LocalEngineConfig(model="x", task="embeddings")),
]
LIMITS = {
    "team_own": {"rpm": 5, "tpm": None, "max_concurrent": None, "monthly_budget_usd": None},
    "team_ml": {"rpm": 777, "tpm": 4242, "max_concurrent": None, "monthly_budget_usd": 321.0},
}


def admin_api(request: httpx.Request) -> httpx.Response:
    """A stand-in for /admin/v1 and /v1: one platform-admin in team 'own', and team 'ml'."""
    path = request.url.path
    if request.headers.get("authorization") != f"Bearer {ADMIN_KEY}":
        return httpx.Response(401, json={"error": {"message": "the API key is not valid"}})
    if path == "/admin/v1/me":
        team = {"id": "team_own", "name": "own"}
        user = {"id": "user_1", "name": "Root", "email": None}
        body = {"key_id": "key_1", "role": "platform-admin", "user": user, "team": team}
        return httpx.Response(200, json=body)
    if path == "/admin/v1/keys" and request.method == "POST":  # no session key: sign in with ours
        return httpx.Response(403, json={"error": {"message": "may not mint a session key"}})
    if path == "/v1/models":
        return httpx.Response(200, json={"data": [{"id": m.name} for m in MODELS]})
    if path in ("/admin/v1/teams/ml", "/admin/v1/teams/team_ml"):
        return httpx.Response(200, json={"id": "team_ml", "name": "ml", "description": ""})
    if path == "/admin/v1/teams/team_own":
        return httpx.Response(200, json={"id": "team_own", "name": "own", "description": ""})
    if path in (
        "/admin/v1/users",
        "/admin/v1/keys",
        "/admin/v1/usage",
        "/admin/v1/teams",
        "/admin/v1/audit",
    ):
        return httpx.Response(200, json={"data": []})
    limits = re.fullmatch(r"/admin/v1/teams/(team_\w+)/limits", path)
    team_id = "team_own" if path == "/admin/v1/limits/me" else limits and limits[1]
    if team_id in LIMITS:
        budget = {"monthly_usd": LIMITS[team_id]["monthly_budget_usd"], "spent_usd": 0.0}
        budget["resets_at"] = "2030-01-01T00:00:00Z"
        return httpx.Response(
            200, json={"team": team_id, "budget": budget, "limits": LIMITS[team_id]}
        )
    return httpx.Response(404, json={"error": {"message": "no such route"}})


@pytest.fixture
def client() -> Iterator[TestClient]:
    http = httpx.AsyncClient(transport=httpx.MockTransport(admin_api))
    portal = build_portal_app(
        PortalSettings(),
        admin_base="http://corral/admin/v1",
        api_base="http://corral/v1",
        http=http,
        session_secret=b"unit-test-secret-unit-test-secret",
        models=MODELS,
    )
    app = Starlette(routes=[Mount("/ui", app=portal)])
    with TestClient(app, base_url="https://corral.test", follow_redirects=False) as tc:
        token = re.search(r'name="csrf-token" content="([0-9a-f]+)"', tc.get("/ui/signin").text)
        assert token is not None
        signed = tc.post("/ui/signin/key", data={"key": ADMIN_KEY, "csrf_token": token[1]})
        assert signed.status_code == 303
        yield tc
    asyncio.run(http.aclose())


def test_an_embedding_model_gets_embedding_snippets_and_no_playground(client: TestClient) -> None:
    page = client.get("/ui/")
    assert page.status_code == 200
    embed = page.text.split('id="model-2"')[1]
    assert "/embeddings" in embed
    assert "chat/completions" not in embed
    assert "playground?model=embed-model" not in page.text
    assert "playground?model=chat-model" in page.text
    playground = client.get("/ui/playground").text
    assert "embed-model" not in playground
    assert "chat-model" in playground


def test_every_link_on_the_catalog_resolves(client: TestClient) -> None:
    page = client.get("/ui/").text
    links = set(re.findall(r'href="(/ui[^"#]*)"', page))
    assert links
    for link in links:
        status = client.get(link.replace("&amp;", "&")).status_code
        assert status in (200, 303), f"{link}: {status}"


def test_a_platform_admin_sees_the_teams_limits_on_its_page(client: TestClient) -> None:
    page = client.get("/ui/team?team=ml")
    assert page.status_code == 200
    text = " ".join(re.sub(r"<[^>]+>", " ", page.text).split())
    assert "Requests per minute 777" in text
    assert "Tokens per minute 4,242" in text
    assert "Requests per minute 5 " not in text  # the admin's own team's limits

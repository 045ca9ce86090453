"""Portal sessions end on the server: a copied cookie dies at sign-out and with its key."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator

import httpx
import pytest

from .conftest import Corral


def _csrf(html: str) -> str:
    match = re.search(r'<meta name="csrf-token" content="([0-9a-f]+)">', html)
    assert match is not None
    return match.group(1)


def _signed_in(corral: Corral, key: str, clients: list[httpx.Client]) -> httpx.Client:
    browser = httpx.Client(base_url=corral.url, headers={"origin": corral.url})
    clients.append(browser)
    token = _csrf(browser.get("/ui/signin").text)
    response = browser.post(
        "/ui/signin/key", data={"key": key, "csrf_token": token, "next": "/ui/keys"}
    )
    assert response.status_code == 303, response.text
    assert browser.get("/ui/keys").status_code == 200
    return browser


def _copy(corral: Corral, browser: httpx.Client, clients: list[httpx.Client]) -> httpx.Client:
    thief = httpx.Client(base_url=corral.url)
    clients.append(thief)
    thief.cookies.set("corral_session", browser.cookies["corral_session"])
    assert thief.get("/ui/keys").status_code == 200
    return thief


@pytest.fixture
def clients() -> Iterator[list[httpx.Client]]:
    opened: list[httpx.Client] = []
    yield opened
    for client in opened:
        client.close()


@pytest.fixture
def developer_key(corral: Corral) -> tuple[str, str]:
    name = f"sessions-{uuid.uuid4().hex[:8]}"
    team = corral.admin("POST", "/teams", json={"name": name}).json()
    user = corral.admin(
        "POST", "/users", json={"name": "Sam", "email": f"{name}@example.com", "team": team["id"]}
    ).json()
    created = corral.admin("POST", "/keys", json={"name": "laptop", "user": user["id"]}).json()
    return created["key"], created["id"]


def test_sign_out_ends_a_copied_session_at_once(
    corral: Corral, developer_key: tuple[str, str], clients: list[httpx.Client]
) -> None:
    browser = _signed_in(corral, developer_key[0], clients)
    thief = _copy(corral, browser, clients)
    token = _csrf(browser.get("/ui/keys").text)
    assert browser.post("/ui/signout", data={"csrf_token": token}).status_code == 303
    stolen = thief.get("/ui/keys")
    assert stolen.status_code == 303
    assert "/ui/signin" in stolen.headers["location"]
    # The key the user pasted is theirs, and keeps working.
    assert corral.admin("GET", f"/keys/{developer_key[1]}").json()["state"] == "active"


def test_revoking_the_key_ends_the_sessions_it_signed_in(
    corral: Corral, developer_key: tuple[str, str], clients: list[httpx.Client]
) -> None:
    browser = _signed_in(corral, developer_key[0], clients)
    thief = _copy(corral, browser, clients)
    assert corral.admin("POST", f"/keys/{developer_key[1]}/revoke").status_code == 200
    for client in (browser, thief):
        ended = client.get("/ui/keys")
        assert ended.status_code == 303
        assert "/ui/signin" in ended.headers["location"]

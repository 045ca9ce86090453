"""The portal in Chromium: SSO, a key, the streaming playground, usage, revocation, roles."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import expect

# The fixtures' types live in this folder's conftest.py, which importlib mode cannot import
# by name (tests/conftest.py shadows it); they are spelled Any here.
Corral = Any
Tab = Any
SCREENSHOTS = Path(__file__).resolve().parents[3] / "artifacts" / "screenshots"


def wait_until(check: Callable[[], object], timeout: float = 10.0) -> None:
    """Poll ``check()`` until it is truthy."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)


def sso_sign_in(tab: Tab, corral: Corral, who: str, start: str = "/") -> None:
    """Sign in through the OIDC provider's consent page as the predefined user ``who``."""
    page = tab.page
    page.goto(corral.ui + start)
    expect(page).to_have_url(re.compile(r"/ui/signin\?next="))
    page.get_by_role("link", name="Sign in with Example SSO").click()
    expect(page).to_have_url(re.compile(re.escape(corral.issuer) + "/oauth2/authorize"))
    page.get_by_role("button", name=who, exact=True).click()
    expect(page).to_have_url(re.compile(re.escape(corral.ui + start) + "$"))


def nav(page: Any, label: str) -> Any:
    """A link in the main navigation."""
    return page.get_by_role("navigation", name="Main").get_by_role("link", name=label)


def chat(key: str, corral: Corral) -> httpx.Response:
    body = {"model": "fake-chat", "messages": [{"role": "user", "content": "hi"}]}
    headers = {"authorization": f"Bearer {key}"}
    return httpx.post(f"{corral.url}/v1/chat/completions", json=body, headers=headers, timeout=10)


def ledger_tokens(corral: Corral) -> int:
    rows = corral.admin("GET", "/usage", params={"group_by": ""}).json()["data"]
    return sum(r["prompt_tokens"] + r["completion_tokens"] for r in rows)


def test_sso_key_playground_usage_revoke(tab: Tab, corral: Corral) -> None:
    page = tab.page
    page.goto(corral.ui + "/")
    tab.shot("signin")
    sso_sign_in(tab, corral, "ada@example.com")

    # Catalog: the model, its price and context, snippets with this Corral's base URL.
    expect(page.get_by_role("heading", name="Models", level=1)).to_be_visible()
    expect(page.locator("header.top")).to_contain_text("Ada Lovelace · ml · developer")
    snippet = page.locator("#snippet-1-curl")
    expect(snippet).to_contain_text(f"curl {corral.url}/v1/chat/completions")
    expect(page.locator(".model")).to_contain_text("8,192 tokens")
    expect(page.locator(".model")).to_contain_text("$1.50 / 1M tokens")
    page.get_by_text("Python (OpenAI SDK)").click()
    expect(page.locator("#snippet-1-python")).to_contain_text(f'base_url="{corral.url}/v1"')
    tab.shot("catalog")

    # Keys: create one; it is shown once, copies to the clipboard, and works.
    nav(page, "Keys").click()
    page.get_by_label("Name").fill("laptop")
    page.get_by_role("button", name="Create key").click()
    key = page.locator("#new-key").inner_text().strip()
    assert re.fullmatch(r"ck-[A-Za-z0-9_-]{20,}", key)
    page.locator("button[data-copy=new-key]").click()
    assert page.evaluate("navigator.clipboard.readText()") == key
    tab.shot("keys-created")
    assert chat(key, corral).status_code == 200
    page.goto(corral.ui + "/keys")
    assert key not in page.content()
    row = page.locator("tr", has_text="laptop")
    expect(row).to_contain_text(f"ck-…{key[-4:]}")
    tab.shot("keys")

    # Playground: the answer streams in piece by piece, then its tokens and cost show.
    nav(page, "Playground").click()
    page.evaluate(
        """() => { window.updates = 0; new MutationObserver(() => window.updates++).observe(
             document.getElementById('transcript'),
             {subtree: true, childList: true, characterData: true}); }"""
    )
    page.get_by_label("Message").fill("Tell me about corrals.")
    page.get_by_label("Message").press("Control+Enter")
    stats = page.locator(".turn.assistant .stats")
    expect(stats).to_contain_text(re.compile(r"\d+ prompt \+ 24 completion tokens · \$0\.0000\d+"))
    assert page.locator(".turn.assistant .content").inner_text().strip()
    assert page.evaluate("window.updates") > 5  # streamed, not one final paint
    tab.shot("playground")

    # Usage: the chart carries the new tokens (the playground turn and the key's call).
    wait_until(lambda: len(corral.recorder.events) >= 2)
    wait_until(
        lambda: (
            ledger_tokens(corral)
            == sum(e.prompt_tokens + e.completion_tokens for e in corral.recorder.events)
        )
    )  # the ledger is written in batches, off the request path
    budget = corral.admin("POST", "/teams/ml/limits", json={"monthly_budget_usd": 500})
    assert budget.status_code == 200, budget.text
    nav(page, "Usage").click()
    page.wait_for_function("() => window.Chart && Chart.getChart('tokens-chart')")
    tokens = page.evaluate(
        """() => Chart.getChart('tokens-chart').data.datasets
                 .map(d => [d.label, d.data.reduce((a, b) => a + b, 0)])"""
    )
    mine = [e for e in corral.recorder.events if e.user_id and e.model == "fake-chat"]
    assert tokens == [["fake-chat", sum(e.prompt_tokens + e.completion_tokens for e in mine)]]
    assert tokens[0][1] >= 48
    expect(page.locator("#total-completion")).to_have_text("48")
    expect(page.locator("#budget-meter")).to_be_attached()
    expect(page.get_by_role("link", name="Export CSV")).to_have_attribute(
        "href", "/ui/usage.csv?since=30d"
    )
    tab.shot("usage")
    csv_text = page.evaluate("fetch('/ui/usage.csv?since=30d').then(r => r.text())")
    assert csv_text.startswith("day,model,requests")

    # Revoke the key: the list says so, and a call with it is refused.
    nav(page, "Keys").click()
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name=re.compile(r"Revoke laptop")).click()
    expect(page.get_by_role("status")).to_contain_text("is revoked")
    refused = chat(key, corral)
    assert refused.status_code == 401

    # A developer gets a proper 403 page for the admin pages.
    for path in ("/team", "/platform"):
        assert tab.open_refused(corral.ui + path) == 403
        expect(page.get_by_role("heading", name="Not allowed")).to_be_visible()
    tab.shot("forbidden")

    # Sign out: back to the sign-in page, and the sign-in's own key is revoked.
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(re.compile(r"/ui/signin$"))
    listing = corral.admin(
        "GET", "/keys", params={"user": "ada@example.com", "include_inactive": "true"}
    ).json()
    states = {k["name"]: k["state"] for k in listing["data"]}
    assert states == {"laptop": "revoked", "portal sign-in": "revoked"}
    page.goto(corral.ui + "/keys")
    expect(page).to_have_url(re.compile(r"/ui/signin\?next=/ui/keys$"))


def test_team_admin_and_platform_admin_pages(tab: Tab, corral: Corral) -> None:
    page = tab.page
    sso_sign_in(tab, corral, "grace@example.com", start="/team")
    expect(page.get_by_role("heading", name="Team ml", level=1)).to_be_visible()
    members = page.locator("#members")
    expect(members).to_contain_text("Grace Hopper")
    expect(page.locator("header.top")).to_contain_text("team-admin")
    expect(nav(page, "Platform")).to_have_count(0)
    assert tab.open_refused(corral.ui + "/platform") == 403
    page.goto(corral.ui + "/team")
    tab.shot("team")
    page.get_by_role("button", name="Sign out").click()

    # A platform-admin signs in with a pasted key (small installs).
    page.get_by_label("API key").fill(corral.admin_key)
    page.get_by_role("button", name="Sign in with a key").click()
    expect(page.locator("header.top")).to_contain_text("platform-admin")
    nav(page, "Platform").click()
    expect(page.locator("#teams")).to_contain_text("ml")
    expect(page.locator("#audit")).to_contain_text("user.create")
    expect(page.get_by_text("This Corral manages no deployments")).to_be_visible()
    tab.shot("platform")
    page.goto(corral.ui + "/team?team=ml")
    expect(page.locator("#team-usage")).to_contain_text("Ada Lovelace")
    page.get_by_label("Role of Ada Lovelace").select_option("team-admin")
    page.get_by_label("Role of Ada Lovelace").locator("xpath=..").get_by_role(
        "button", name="Change"
    ).click()
    ada = corral.admin("GET", "/users/ada@example.com").json()
    assert ada["role"] == "team-admin"
    page.get_by_role("button", name="Sign out").click()
    # A pasted key is the user's own: signing out forgets it, never revokes it.
    assert corral.admin("GET", "/me").status_code == 200


def test_phone_width_dark_mode_and_keyboard(browser: Any, corral: Corral) -> None:
    context = browser.new_context(viewport={"width": 390, "height": 844}, color_scheme="dark")
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    try:
        page.goto(corral.ui + "/signin")
        page.keyboard.press("Tab")
        expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
        for _ in range(5):  # brand link, SSO button, then the key field
            page.keyboard.press("Tab")
            if page.evaluate("document.activeElement.id") == "key":
                break
        expect(page.get_by_label("API key")).to_be_focused()
        page.keyboard.type(corral.admin_key)
        page.keyboard.press("Enter")
        expect(page.get_by_role("heading", name="Models", level=1)).to_be_visible()
        background = page.evaluate("getComputedStyle(document.body).backgroundColor")
        assert background == "rgb(17, 18, 22)"  # the dark palette
        for path in ("/", "/playground", "/keys", "/usage", "/team", "/platform"):
            page.goto(corral.ui + path)
            overflow = page.evaluate(
                "document.documentElement.scrollWidth - document.documentElement.clientWidth"
            )
            assert overflow <= 0, f"{path} scrolls sideways at phone width"
        page.goto(corral.ui + "/")
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / "catalog-phone-dark.png"), full_page=True)
    finally:
        context.close()
    assert errors == []

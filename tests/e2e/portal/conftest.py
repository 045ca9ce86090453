"""A whole Corral (gateway, admin API, portal) and a real OIDC provider on loopback, and Chromium.

The OIDC provider is the `oidc-provider-mock` package in a subprocess. Corral runs in a
ServerThread with an in-memory store, a SQLite usage ledger, its FakeEngine, the real admin API
and the portal at /ui.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright

from corral.admin.app import build_admin_app
from corral.catalog import FakeEngineConfig, ModelSpec, Pricing
from corral.clock import SystemClock
from corral.composition.platform import Platform, running_platform
from corral.composition.serving import ServerThread
from corral.gateway.metering import Settlement, UsageEvent
from corral.portal.app import build_portal_app
from corral.portal.settings import ClaimMapping, OidcSettings, PortalSettings
from corral.principals import KeyDirectory
from corral.settings import CorralSettings
from corral.store.bootstrap import bootstrap_admin_key
from corral.store.keysync import KeySync
from corral.store.memory import InMemoryStore
from corral.store.migrate import upgrade
from corral.store.usage import SqlUsage

# Debian's Chromium; CORRAL_TEST_CHROMIUM points elsewhere (a missing path shows the skip).
CHROMIUM = os.environ.get("CORRAL_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SECRET = b"portal-e2e-secret-portal-e2e-secret"
SCREENSHOTS = Path(__file__).resolve().parents[3] / "artifacts" / "screenshots"
USERS = [
    {
        "sub": "ada@example.com",
        "email": "ada@example.com",
        "name": "Ada Lovelace",
        "groups": ["ml"],
    },
    {
        "sub": "grace@example.com",
        "email": "grace@example.com",
        "name": "Grace Hopper",
        "groups": ["ml", "ml-leads"],
    },
]
MODEL = ModelSpec(
    name="fake-chat",
    engine=FakeEngineConfig(tokens=24, time_to_first_token=0.05, token_delay=0.02),
    pricing=Pricing(input_per_1m=0.5, output_per_1m=1.5),
    context_length=8192,
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def oidc_issuer() -> Iterator[str]:
    """A real OpenID Connect provider (oidc-provider-mock) on loopback, nonce required."""
    port = free_port()
    command = [sys.executable, "-m", "oidc_provider_mock", "-p", str(port), "--require-nonce"]
    for user in USERS:
        command += ["--user-claims", json.dumps(user)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    issuer = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                httpx.get(
                    issuer + "/.well-known/openid-configuration", timeout=1
                ).raise_for_status()
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError("the OIDC provider did not start") from None
                time.sleep(0.1)
        yield issuer
    finally:
        process.terminate()
        process.wait(10)


@dataclass
class UsageRecorder:
    """Keeps the gateway's usage events (a second meter beside the ledger) for assertions."""

    events: list[UsageEvent] = field(default_factory=list)

    def record(self, event: UsageEvent, settlement: Settlement | None = None) -> None:
        del settlement
        self.events.append(event)


@dataclass
class Corral:
    url: str
    issuer: str
    admin_key: str
    server: ServerThread
    recorder: UsageRecorder

    @property
    def ui(self) -> str:
        return self.url + "/ui"

    def admin(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"authorization": f"Bearer {self.admin_key}"}
        return httpx.request(method, f"{self.url}/admin/v1{path}", headers=headers, **kwargs)


@pytest.fixture(scope="session")
def corral(oidc_issuer: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Corral]:
    """Corral with its admin API, usage ledger and portal, SSO pointed at the test provider."""
    clock = SystemClock()
    store = InMemoryStore()
    state: dict[str, object] = {}
    data_dir = tmp_path_factory.mktemp("corral")
    ledger_url = f"sqlite+aiosqlite:///{data_dir / 'corral.db'}"
    asyncio.run(upgrade(ledger_url))

    @asynccontextmanager
    async def factory() -> AsyncIterator[Platform]:
        first = await bootstrap_admin_key(store, SECRET, clock.now())
        assert first is not None
        state["admin_key"] = first.secret
        keys = KeyDirectory(SECRET)
        sync = KeySync(store, keys, clock)
        await sync.start()
        recorder = UsageRecorder()
        state["recorder"] = recorder
        base = f"http://127.0.0.1:{server.port}"
        settings = PortalSettings(
            oidc=OidcSettings(
                issuer=oidc_issuer,
                client_id="corral-portal",
                client_secret="portal-client-secret",
                display_name="Example SSO",
                claims=ClaimMapping(roles={"ml-leads": "team-admin"}, create_teams=True),
            )
        )
        usage = SqlUsage(ledger_url)
        async with httpx.AsyncClient() as http:
            portal = build_portal_app(
                settings,
                admin_base=base + "/admin/v1",
                api_base=base + "/v1",
                http=http,
                session_secret=SECRET,
                models=[MODEL],
                admin_key=lambda: first.secret,
            )
            admin = build_admin_app(store=store, keys=sync, clock=clock, usage_ledger=usage)
            mounts = {"/admin/v1": admin, "/ui": portal}
            settings = CorralSettings(models=[MODEL], data_dir=data_dir)
            try:
                async with running_platform(
                    settings, keys=keys, meters=(recorder,), mounts=mounts, usage_sink=usage
                ) as platform:
                    yield platform
            finally:
                await sync.stop()
                await usage.close()

    server = ServerThread(factory)
    with server:
        recorder = state["recorder"]
        assert isinstance(recorder, UsageRecorder)
        yield Corral(server.url, oidc_issuer, str(state["admin_key"]), server, recorder)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    # A skip here, not a pytestmark: pytest ignores pytestmark in a conftest.py, and every
    # portal test asks for the browser before anything else is started.
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} not found: apt-get install chromium (scripts/test-tools)")
    # Module scope: while Playwright's sync API is open, the main thread looks like it runs an
    # event loop, which would break every async test collected after these.
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@dataclass
class Tab:
    """A browser page that remembers console errors and saves screenshots."""

    page: Page
    context: BrowserContext
    errors: list[str]
    refused: set[str] = field(default_factory=set)

    def open_refused(self, url: str) -> int:
        """Open a page that is meant to answer 4xx (Chromium logs that as a console error)."""
        self.refused.add(url)
        response = self.page.goto(url)
        assert response is not None
        return response.status

    def unexpected_errors(self) -> list[str]:
        expected = {f"{url}: Failed to load resource" for url in self.refused}
        return [e for e in self.errors if not any(e.startswith(x) for x in expected)]

    def shot(self, name: str) -> None:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


@pytest.fixture
def tab(browser: Browser, corral: Corral) -> Iterator[Tab]:
    """A fresh browser context (no cookies); fails the test on any console error of the portal."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=corral.url)
    # Nothing leaves loopback: the provider's page links a stylesheet on a CDN.
    context.route(
        re.compile(r"^https?://(?!127\.0\.0\.1[:/])"),
        lambda route: route.fulfill(status=200, content_type="text/css", body=""),
    )
    page = context.new_page()
    errors: list[str] = []
    page.on(
        "console",
        lambda m: (
            errors.append(f"{m.location.get('url')}: {m.text}") if m.type == "error" else None
        ),
    )
    page.on("pageerror", lambda exc: errors.append(f"page error: {exc}"))
    opened = Tab(page, context, errors)
    yield opened
    context.close()
    unexpected = opened.unexpected_errors()
    assert unexpected == [], "console errors: " + "; ".join(unexpected)

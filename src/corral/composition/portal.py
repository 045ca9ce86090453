"""Mounts the developer portal: it reaches this process's own /admin/v1 and /v1 on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx

from corral.clock import Clock
from corral.composition.tenancy import Tenancy
from corral.portal.app import build_portal_app
from corral.principals import Principal, Role, new_api_key
from corral.settings import CorralSettings

PORTAL_KEY_ID = "portal"


def loopback_base(settings: CorralSettings) -> str:
    """How this process reaches itself."""
    host = settings.server.host
    if host in ("0.0.0.0", "::", ""):  # noqa: S104  (reading the bind address, not binding)
        host = "127.0.0.1"
    return f"http://{host}:{settings.server.port}"


@asynccontextmanager
async def portal_mount(
    settings: CorralSettings, tenancy: Tenancy, clock: Clock
) -> AsyncIterator[None]:
    """Add the portal to ``tenancy.mounts`` at /ui for as long as the block runs."""
    if not settings.portal.enabled:
        yield
        return
    # The portal's own credential for first SSO sign-ins: in memory only, audited as "portal".
    portal_key = new_api_key()
    tenancy.keys.pin(portal_key, Principal(key_id=PORTAL_KEY_ID, role=Role.PLATFORM_ADMIN))
    base = loopback_base(settings)
    async with httpx.AsyncClient(timeout=httpx.Timeout(30.0, read=600.0)) as http:
        tenancy.mounts["/ui"] = build_portal_app(
            settings.portal,
            admin_base=f"{base}/admin/v1",
            api_base=f"{base}/v1",
            http=http,
            session_secret=tenancy.secret,
            models=settings.models,
            admin_key=lambda: portal_key,
            clock=clock,
        )
        try:
            yield
        finally:
            tenancy.mounts.pop("/ui", None)

"""build_portal_app: the developer portal as an ASGI app, mounted by the composition root at /ui."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount
from starlette.staticfiles import StaticFiles

from corral.catalog import ModelSpec
from corral.clock import Clock, SystemClock
from corral.portal import dashboards, developer, signin
from corral.portal.oidc import OidcClient
from corral.portal.rendering import Renderer, template_environment
from corral.portal.sessions import SESSION_COOKIE, Sealer, derive_key, open_session
from corral.portal.settings import PortalSettings
from corral.portal.upstream import Upstream
from corral.portal.visits import Portal, Visit


class _Static(StaticFiles):
    """The portal's scripts and styles, which a browser must never read as another type."""

    def file_response(self, *args: Any, **kwargs: Any) -> Response:
        response = super().file_response(*args, **kwargs)
        response.headers["x-content-type-options"] = "nosniff"
        return response


def build_portal_app(
    settings: PortalSettings,
    *,
    admin_base: str,
    api_base: str,
    http: httpx.AsyncClient,
    session_secret: bytes,
    models: Sequence[ModelSpec] = (),
    admin_key: Callable[[], str | None] | None = None,
    clock: Clock | None = None,
) -> Starlette:
    """The portal.

    ``admin_base`` and ``api_base`` are where this process serves /admin/v1 and /v1 (loopback
    URLs: the portal calls them server-side with the signed-in user's key). ``http`` is owned
    by the caller, who closes it. ``session_secret`` (e.g. the server secret) seals cookies.
    ``models`` is the catalog, for context lengths and prices. ``admin_key`` returns a
    platform-admin key with which a first SSO sign-in creates the user and mints their key.
    """
    portal = Portal(
        settings=settings,
        upstream=Upstream(http, admin_base, api_base),
        renderer=Renderer(template_environment()),
        sessions=Sealer(session_secret, "corral-portal-session"),
        logins=Sealer(session_secret, "corral-portal-sso"),
        csrf_secret=derive_key(session_secret, "corral-portal-csrf"),
        clock=clock or SystemClock(),
        models=tuple(models),
        oidc=None if settings.oidc is None else OidcClient(settings.oidc, http),
        admin_key=admin_key or (lambda: None),
    )
    routes: list[BaseRoute] = [
        *signin.routes(portal),
        *developer.routes(portal),
        *dashboards.routes(portal),
        Mount("/static", _Static(packages=[("corral.portal", "static")]), name="static"),
    ]

    async def http_error(request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        session = open_session(
            portal.sessions,
            request.cookies.get(SESSION_COOKIE),
            portal.clock.now(),
            portal.session_seconds,
        )
        visit = Visit(portal, request, session)
        if status == 404:
            return visit.error(404, "Not found", "There is no such page in the portal.")
        return visit.error(status, "Not accepted", "The portal cannot answer that request.")

    return Starlette(routes=routes, exception_handlers={HTTPException: http_error})

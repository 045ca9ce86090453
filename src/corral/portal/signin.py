"""Sign-in pages: single sign-on (OIDC), an API key for small installs, and sign-out."""

from __future__ import annotations

import contextlib
import hmac
from collections.abc import Awaitable, Callable
from dataclasses import asdict

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from corral.errors import Overloaded, PermissionDenied
from corral.portal.claims import membership
from corral.portal.oidc import PendingLogin
from corral.portal.provisioning import provision, session_for, session_key_for
from corral.portal.sessions import LOGIN_COOKIE
from corral.portal.upstream import Refused
from corral.portal.visits import Handler, Portal, Visit, guarded

_LOGIN_SECONDS = 600


def routes(portal: Portal) -> list[Route]:
    """The sign-in, SSO callback and sign-out routes."""

    def open_to_all(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        return guarded(portal, handler, signed_in=False)

    return [
        Route("/signin", open_to_all(signin_page), methods=["GET"]),
        Route("/signin/key", open_to_all(key_signin), methods=["POST"]),
        Route("/signin/sso", open_to_all(sso_start), methods=["GET"]),
        Route("/signin/callback", open_to_all(sso_callback), methods=["GET"]),
        Route("/signout", open_to_all(signout), methods=["POST"]),
    ]


def next_path(visit: Visit, asked: str | None) -> str:
    """Where to go after signing in: a path inside the portal, never another site."""
    base = visit.base
    if asked and asked.startswith(base + "/") and "//" not in asked and "\\" not in asked:
        return asked
    return base + "/"


async def signin_page(visit: Visit, message: str | None = None, status: int = 200) -> Response:
    if visit.session.signed_in:
        return RedirectResponse(next_path(visit, visit.request.query_params.get("next")), 303)
    settings = visit.portal.settings
    expired = visit.request.query_params.get("expired") == "1"
    context = {
        "title": "Sign in",
        "sso": settings.oidc.display_name if settings.oidc else None,
        "key_sign_in": settings.key_sign_in,
        "next": next_path(visit, visit.request.query_params.get("next")),
        "message": message or ("Your session ended; sign in again." if expired else None),
    }
    return visit.page("signin.html", context, status=status)


async def key_signin(visit: Visit) -> Response:
    portal = visit.portal
    if not portal.settings.key_sign_in:
        return visit.error(403, "Not allowed", "Sign-in with an API key is turned off here.")
    key = visit.form.get("key", "").strip()
    if not key.startswith("ck-") or len(key) > 200:
        return await signin_page(visit, "That does not look like a Corral key (ck-…).", 400)
    now = portal.clock.now()
    try:
        visit.session = await session_key_for(
            portal.upstream, key, now=now, lifetime=portal.session_seconds
        )
    except PermissionDenied as exc:
        return await signin_page(visit, exc.message, 401)
    return RedirectResponse(next_path(visit, visit.form.get("next")), 303)


async def sso_start(visit: Visit) -> Response:
    oidc = visit.portal.oidc
    if oidc is None:
        return visit.error(404, "Not found", "Single sign-on is not set up on this Corral.")
    nxt = next_path(visit, visit.request.query_params.get("next"))
    url, pending = await oidc.begin(_callback_url(visit), nxt)
    response = RedirectResponse(url, 303)
    response.set_cookie(
        LOGIN_COOKIE,
        visit.portal.logins.seal(dict(asdict(pending))),
        max_age=_LOGIN_SECONDS,
        path=visit.base + "/signin",
        secure=visit.request.url.scheme == "https",
        httponly=True,
        samesite="lax",
    )
    return response


async def sso_callback(visit: Visit) -> Response:
    portal, query = visit.portal, visit.request.query_params
    data = portal.logins.open(visit.request.cookies.get(LOGIN_COOKIE), _LOGIN_SECONDS)
    if portal.oidc is None or data is None:
        return await signin_page(visit, "That sign-in took too long or was not started here.", 400)
    pending = PendingLogin(**{k: str(data.get(k, "")) for k in PendingLogin.__slots__})
    if not hmac.compare_digest(pending.state, query.get("state", "")):
        return await signin_page(visit, "The sign-in did not match this browser; try again.", 400)
    if "error" in query or "code" not in query:
        reason = query.get("error_description") or query.get("error") or "no code"
        return await signin_page(visit, f"The identity provider refused: {reason[:200]}", 403)
    claims = await portal.oidc.finish(pending, query["code"], _callback_url(visit))
    member = membership(claims, portal.oidc.settings.claims)
    admin_key = portal.admin_key()
    if admin_key is None:
        raise Overloaded("single sign-on is not ready: the portal has no admin credential yet")
    key, _ = await provision(
        portal.upstream,
        admin_key,
        member,
        create_teams=portal.oidc.settings.claims.create_teams,
        lifetime=portal.session_seconds,
    )
    expires = portal.clock.now() + portal.session_seconds
    visit.session = await session_for(portal.upstream, key, minted=True, expires_at=expires)
    response = RedirectResponse(next_path(visit, pending.next_path), 303)
    response.delete_cookie(LOGIN_COOKIE, path=visit.base + "/signin")
    return response


async def signout(visit: Visit) -> Response:
    session = visit.session
    if session.minted and session.key is not None and session.key_id is not None:
        # A key made for this sign-in dies with it; one already revoked or expired is fine.
        with contextlib.suppress(Refused):
            path = f"/keys/{session.key_id}/revoke"
            await visit.portal.upstream.admin("POST", path, session.key)
    visit.session = type(session)()
    return visit.redirect("/signin")


def _callback_url(visit: Visit) -> str:
    public = visit.portal.settings.public_url
    url = visit.request.url
    origin = public or f"{url.scheme}://{url.netloc}"
    return f"{origin}{visit.base}/signin/callback"

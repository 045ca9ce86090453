"""One page visit: its session and form, guarded by sign-in, role and CSRF checks."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, quote

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from corral.catalog import ModelSpec
from corral.clock import Clock
from corral.errors import PayloadTooLarge, RequestError
from corral.portal import csrf
from corral.portal.oidc import OidcClient
from corral.portal.rendering import Renderer, at_least
from corral.portal.sessions import SESSION_COOKIE, Sealer, Session, open_session, seal_session
from corral.portal.settings import PortalSettings
from corral.portal.upstream import Refused, Upstream
from corral.principals import Role

MAX_FORM_BYTES = 16 * 1024


@dataclass(frozen=True)
class Portal:
    """Everything the portal's pages use, wired once by the app factory."""

    settings: PortalSettings
    upstream: Upstream
    renderer: Renderer
    sessions: Sealer
    logins: Sealer
    csrf_secret: bytes
    clock: Clock
    models: Sequence[ModelSpec] = ()
    oidc: OidcClient | None = None
    admin_key: Callable[[], str | None] = lambda: None

    @property
    def session_seconds(self) -> float:
        return self.settings.session_hours * 3600.0


@dataclass
class Visit:
    """A request as a page sees it; a handler replaces ``session`` to sign in or out."""

    portal: Portal
    request: Request
    session: Session
    form: dict[str, str] = field(default_factory=dict)

    @property
    def key(self) -> str:
        """The signed-in key (pages that need one are guarded, so it is there)."""
        assert self.session.key is not None
        return self.session.key

    @property
    def base(self) -> str:
        return str(self.request.scope.get("root_path", "")).rstrip("/")

    @property
    def csrf_token(self) -> str:
        return csrf.token_for(self.portal.csrf_secret, self.session.sid)

    def page(self, name: str, context: dict[str, Any], status: int = 200) -> Response:
        return self.portal.renderer.page(
            self.request,
            name,
            {"session": self.session, "csrf_token": self.csrf_token, **context},
            status=status,
        )

    def redirect(self, path: str) -> Response:
        return RedirectResponse(self.base + path, status_code=303)

    def error(self, status: int, title: str, message: str) -> Response:
        context = {"title": title, "message": message, "status": status}
        return self.page("error.html", context, status=status)


Handler = Callable[[Visit], Awaitable[Response]]


def guarded(
    portal: Portal, handler: Handler, *, signed_in: bool = True, role: Role | None = None
) -> Callable[[Request], Awaitable[Response]]:
    """A Starlette endpoint running ``handler`` once the visit passes every check."""

    async def endpoint(request: Request) -> Response:
        loaded = open_session(
            portal.sessions,
            request.cookies.get(SESSION_COOKIE),
            portal.clock.now(),
            portal.session_seconds,
        )
        visit = Visit(portal, request, loaded)
        response = await _checked(visit, handler, signed_in, role)
        if visit.session != loaded or SESSION_COOKIE not in request.cookies:
            _set_session_cookie(visit, response)
        return response

    return endpoint


async def _checked(visit: Visit, handler: Handler, signed_in: bool, role: Role | None) -> Response:
    try:
        refusal = await _refusal(visit, signed_in, role)
        return refusal if refusal is not None else await handler(visit)
    except Refused as exc:
        if exc.status == 401 and visit.session.signed_in:
            visit.session = Session()
            return visit.redirect("/signin?expired=1")
        return visit.error(exc.status, _title(exc.status), exc.message)
    except RequestError as exc:
        return visit.error(exc.status, _title(exc.status), exc.message)


async def _refusal(visit: Visit, signed_in: bool, role: Role | None) -> Response | None:
    """The answer when the visit may not go on: not signed in, a bad CSRF token, a low role."""
    request = visit.request
    if signed_in and not visit.session.signed_in:
        if request.method != "GET":
            return visit.error(401, "Signed out", "Your session has ended; sign in again.")
        return visit.redirect("/signin?next=" + quote(request.url.path, safe="/"))
    if request.method != "GET" and not await _csrf_ok(visit):
        return visit.error(
            403,
            "Form expired",
            "This form is out of date or came from another site; reload the page and try again.",
        )
    if role is not None and not at_least(visit.session.role, role):
        return visit.error(403, "Not allowed", f"This page is for {role.value}s only.")
    return None


async def _csrf_ok(visit: Visit) -> bool:
    request = visit.request
    if not csrf.same_origin(request.headers.get("origin"), request.headers.get("host")):
        return False
    offered = request.headers.get(csrf.HEADER)
    if request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        visit.form = await read_form(request)
        offered = visit.form.get(csrf.FIELD, offered)
    return csrf.token_matches(visit.portal.csrf_secret, visit.session.sid, offered)


async def read_form(request: Request) -> dict[str, str]:
    """An url-encoded form body (the only kind the portal's forms send), size-limited."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise PayloadTooLarge(f"the form is larger than {MAX_FORM_BYTES} bytes")
    pairs = parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)
    return dict(pairs)


def _set_session_cookie(visit: Visit, response: Response) -> None:
    portal, session = visit.portal, visit.session
    secure = portal.settings.secure_cookies
    if secure is None:
        secure = visit.request.url.scheme == "https"
    lifetime = session.expires_at - portal.clock.now() if session.signed_in else None
    response.set_cookie(
        SESSION_COOKIE,
        seal_session(portal.sessions, session),
        max_age=None if lifetime is None else max(1, int(lifetime)),
        path=visit.base or "/",
        secure=secure,
        httponly=True,
        samesite="lax",
    )


def _title(status: int) -> str:
    return {
        400: "Not accepted",
        401: "Signed out",
        403: "Not allowed",
        404: "Not found",
        409: "Already exists",
        429: "Slow down",
    }.get(status, "Something went wrong")

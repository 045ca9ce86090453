"""Turns templates and a visit into HTML responses, with the portal's security headers."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from importlib.resources import files
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from corral.principals import Role

STATIC_VERSION = "1"
_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'; "
    "form-action 'self'"
)
SECURITY_HEADERS = {
    "content-security-policy": _CSP,
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "x-frame-options": "DENY",
    "cache-control": "no-store",
}
_RANK = {Role.DEVELOPER: 0, Role.TEAM_ADMIN: 1, Role.PLATFORM_ADMIN: 2}


def template_environment() -> Environment:
    """Templates shipped in the package, HTML-escaped by default."""
    folder = files("corral.portal") / "templates"
    env = Environment(
        loader=FileSystemLoader(str(folder)),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["money"] = money
    env.filters["count"] = count
    env.filters["when"] = when
    return env


def money(value: object) -> str:
    """US dollars for people: cents for everyday sums, significant digits for tiny ones."""
    amount = float(value) if isinstance(value, int | float) else 0.0
    if amount == 0 or abs(amount) >= 0.01:
        return f"${amount:,.2f}"
    return f"${amount:.2g}" if abs(amount) >= 1e-4 else f"${amount:.6f}".rstrip("0")


def count(value: object) -> str:
    """A whole number with thousands separators."""
    return f"{int(value):,}" if isinstance(value, int | float) else "0"


def when(value: object) -> str:
    """An ISO 8601 time from the admin API as ``2026-11-26 23:32 UTC``; a dash when absent."""
    if not isinstance(value, str) or not value:
        return "—"
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)
    except ValueError:
        return value
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def at_least(role: Role | None, needed: Role) -> bool:
    """Whether ``role`` includes ``needed`` (platform-admin ⊇ team-admin ⊇ developer)."""
    return role is not None and _RANK[role] >= _RANK[needed]


class Renderer:
    """Renders a page with what every page needs: the user, the CSRF token, the base path."""

    def __init__(self, env: Environment) -> None:
        self._env = env

    def page(
        self,
        request: Request,
        name: str,
        context: Mapping[str, Any],
        *,
        status: int = 200,
        headers: Mapping[str, str] | None = None,
    ) -> Response:
        base = request.scope.get("root_path", "").rstrip("/")
        html = self._env.get_template(name).render(
            {
                "base": base,
                "static": f"{base}/static",
                "static_version": STATIC_VERSION,
                "path": request.url.path,
                "Role": Role,
                "at_least": at_least,
                **context,
            }
        )
        return HTMLResponse(
            html, status_code=status, headers={**SECURITY_HEADERS, **(headers or {})}
        )

"""Usage, team-admin and platform-admin pages, drawn from the admin API's usage and lists."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from starlette.responses import Response
from starlette.routing import Route

from corral.errors import InvalidRequest
from corral.portal.rendering import SECURITY_HEADERS
from corral.portal.usage import WINDOWS, budget_view, by_member, daily_series
from corral.portal.visits import Portal, Visit, guarded
from corral.principals import Role

_ROLES = [role.value for role in Role]


def routes(portal: Portal) -> list[Route]:
    """The usage, team and platform routes."""
    team, platform = Role.TEAM_ADMIN, Role.PLATFORM_ADMIN
    return [
        Route("/usage", guarded(portal, usage_page), methods=["GET"]),
        Route("/usage.csv", guarded(portal, usage_csv), methods=["GET"]),
        Route("/team", guarded(portal, team_page, role=team), methods=["GET"]),
        Route(
            "/team/members/{user}/role",
            guarded(portal, change_role, role=team),
            methods=["POST"],
        ),
        Route("/platform", guarded(portal, platform_page, role=platform), methods=["GET"]),
    ]


def _window(visit: Visit) -> str:
    since = visit.request.query_params.get("since", "30d")
    return since if since in WINDOWS else "30d"


async def usage_page(visit: Visit) -> Response:
    upstream, since = visit.portal.upstream, _window(visit)
    params = {"since": since, "group_by": "day,model"}
    usage = await upstream.admin_if_present("/usage", visit.key, params)
    limits = await upstream.admin_if_present("/limits/me", visit.key)
    context = {
        "title": "Usage",
        "since": since,
        "windows": WINDOWS,
        "series": None if usage is None else daily_series(usage.get("data", [])),
        "budget": budget_view(limits),
    }
    return visit.page("usage.html", context)


async def usage_csv(visit: Visit) -> Response:
    since = _window(visit)
    params = {"since": since, "group_by": "day,model"}
    text = await visit.portal.upstream.admin_text("/usage.csv", visit.key, params)
    headers = {
        **SECURITY_HEADERS,
        "content-disposition": f'attachment; filename="corral-usage-{since}.csv"',
    }
    return Response(text, media_type="text/csv", headers=headers)


async def _team_id(visit: Visit) -> str:
    asked = visit.request.query_params.get("team")
    if asked and visit.session.role is Role.PLATFORM_ADMIN:
        team = await visit.portal.upstream.admin("GET", f"/teams/{quote(asked)}", visit.key)
        return str(team["id"])
    if visit.session.team_id is None:
        raise InvalidRequest("your key belongs to no team; pick one with ?team=NAME")
    return visit.session.team_id


async def team_page(visit: Visit) -> Response:
    upstream, since = visit.portal.upstream, _window(visit)
    team_id = await _team_id(visit)
    team = await upstream.admin("GET", f"/teams/{team_id}", visit.key)
    members = (await upstream.admin("GET", "/users", visit.key, params={"team": team_id}))["data"]
    params = {"since": since, "group_by": "user,model", "team": team_id}
    usage = await upstream.admin_if_present("/usage", visit.key, params)
    names = {m["id"]: m["name"] for m in members}
    context = {
        "title": f"Team {team['name']}",
        "team": team,
        "members": members,
        "roles": _ROLES if visit.session.role is Role.PLATFORM_ADMIN else _ROLES[1:],
        "since": since,
        "windows": WINDOWS,
        "usage": None if usage is None else by_member(usage.get("data", []), names),
        # The team shown, not the viewer's own (a platform-admin looks at other teams).
        "budget": budget_view(
            await upstream.admin_if_present(f"/teams/{quote(team_id)}/limits", visit.key)
        ),
    }
    return visit.page("team.html", context)


async def change_role(visit: Visit) -> Response:
    user_id = visit.request.path_params["user"]
    role = visit.form.get("role", "")
    if role not in _ROLES:
        raise InvalidRequest(f"role must be one of {', '.join(_ROLES)}", param="role")
    path = f"/users/{quote(user_id, safe='')}"
    user = await visit.portal.upstream.admin("PATCH", path, visit.key, body={"role": role})
    return visit.redirect(f"/team?team={quote(str(user['team_id']))}")


async def platform_page(visit: Visit) -> Response:
    upstream, key = visit.portal.upstream, visit.key
    teams = (await upstream.admin("GET", "/teams", key))["data"]
    audit = await upstream.admin("GET", "/audit", key, params={"limit": "50"})
    deployments = await upstream.admin_if_present("/deployments", key)
    fleet = await upstream.admin_if_present("/fleet", key)
    context = {
        "title": "Platform",
        "teams": teams,
        "audit": audit.get("data", []),
        "deployments": _table(deployments),
        "fleet": _table(fleet),
    }
    return visit.page("platform.html", context)


def _table(listing: dict[str, Any] | None) -> dict[str, Any] | None:
    """An admin list of unknown shape as columns and rows of plain values (None: no endpoint)."""
    if listing is None:
        return None
    rows = [r for r in listing.get("data", []) if isinstance(r, dict)]
    columns = [c for c in (rows[0] if rows else {}) if not isinstance(rows[0][c], dict | list)]
    return {"columns": columns[:7], "rows": [[r.get(c) for c in columns[:7]] for r in rows]}

"""Admin operations on the audit log: list (newest first, paged) and export as JSON lines."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from starlette.responses import StreamingResponse

from corral.admin.operations import AdminContext, Call, Operation
from corral.admin.policy import Action, Scope
from corral.admin.schemas import AuditFilter, AuditList, AuditPage, audit_out
from corral.admin.teams import find_team
from corral.errors import InvalidRequest
from corral.principals import Role
from corral.store.records import AuditQuery

_AGO = re.compile(r"(\d{1,6})\s*([smhdw])")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
EXPORT_PAGE = 500
_LAST_MOMENT = datetime(9999, 12, 30, tzinfo=UTC).timestamp()


def parse_moment(text: str, now: float, param: str) -> float:
    """A point in time from ``24h`` / ``30m`` / ``7d`` (ago), Unix seconds, or ISO 8601,
    between 1970 and 9999 (a longer duration reaches back to 1970)."""
    if match := _AGO.fullmatch(text):
        return max(0.0, now - int(match[1]) * _UNIT[match[2]])
    try:
        at = float(text)
    except ValueError:
        at = _iso_moment(text, param)
    if not 0 <= at <= _LAST_MOMENT:  # also NaN
        raise InvalidRequest(
            f"{param}: the time must lie between 1970 and the year 9999", param=param
        )
    return at


def _iso_moment(text: str, param: str) -> float:
    try:
        when = datetime.fromisoformat(text)
    except ValueError as exc:
        raise InvalidRequest(
            f"{param}: expected a duration such as 24h, 30m or 7d, Unix seconds, or an ISO 8601 "
            "time such as 2025-01-31T12:00:00Z",
            param=param,
        ) from exc
    try:
        return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()
    except (OverflowError, ValueError):  # year 1 or 9999 shifted past the range by a zone
        return -1.0


async def _query(ctx: AdminContext, call: Call[Any], f: AuditFilter) -> AuditQuery:
    if f.team is not None:
        team_id: str | None = (await find_team(ctx, f.team)).id
    else:
        team_id = None if call.principal.role is Role.PLATFORM_ADMIN else call.principal.team_id
    call.authorize(Action.AUDIT_READ, Scope(team_id))
    return AuditQuery(
        since=None if f.since is None else parse_moment(f.since, call.now, "since"),
        until=None if f.until is None else parse_moment(f.until, call.now, "until"),
        actor_key_id=f.actor,
        action=f.action,
        target_id=f.target,
        team_id=team_id,
    )


async def list_audit(ctx: AdminContext, call: Call[AuditPage]) -> AuditList:
    page = call.input
    base = await _query(ctx, call, page)
    entries = await ctx.store.list_audit(replace(base, before_id=page.before, limit=page.limit + 1))
    shown = entries[: page.limit]
    more = len(entries) > page.limit
    return AuditList(
        data=[audit_out(e) for e in shown],
        has_more=more,
        next_before=shown[-1].id if more and shown else None,
    )


async def export_audit(ctx: AdminContext, call: Call[AuditFilter]) -> StreamingResponse:
    base = await _query(ctx, call, call.input)

    async def lines() -> AsyncIterator[bytes]:
        after: int | None = None
        while True:
            page = replace(base, after_id=after, oldest_first=True, limit=EXPORT_PAGE)
            batch = await ctx.store.list_audit(page)
            for entry in batch:
                yield json.dumps(audit_out(entry).model_dump(mode="json")).encode() + b"\n"
            if len(batch) < EXPORT_PAGE:
                return
            after = batch[-1].id

    return StreamingResponse(lines(), media_type="application/x-ndjson")


OPERATIONS: list[Operation[Any]] = [
    Operation(
        "GET",
        "/audit",
        Action.AUDIT_READ,
        "List audit entries, newest first",
        AuditPage,
        AuditList,
        list_audit,
    ),
    Operation(
        "GET",
        "/audit/export",
        Action.AUDIT_READ,
        "Export audit entries as JSON lines, oldest first",
        AuditFilter,
        None,
        export_audit,
        media_type="application/x-ndjson",
    ),
]

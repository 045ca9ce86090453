"""InMemoryUsage: the usage ledger and limits port in memory (for unit tests and demos)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import Any

from corral.store.records import Actor
from corral.store.usage import (
    LOST_OUTCOME,
    LimitChanges,
    LimitSetting,
    SpendScope,
    UsageFilter,
    day_of,
)


class InMemoryUsage:
    """Same contract as SqlUsage: one record per request id, grouped reports, limits."""

    def __init__(self) -> None:
        self.records: dict[str, Any] = {}
        self.limits: dict[tuple[str, str], LimitSetting] = {}
        self.audit: list[tuple[Actor, LimitSetting]] = []

    async def close(self) -> None:
        return None

    async def write_usage(self, records: Sequence[Any]) -> None:
        for record in records:
            held = self.records.get(record.request_id)
            if held is None or held.outcome == LOST_OUTCOME:
                self.records[record.request_id] = record

    async def report(self, where: UsageFilter, group_by: Iterable[str]) -> list[dict[str, Any]]:
        groups = list(group_by)
        totals: dict[tuple[Any, ...], dict[str, Any]] = defaultdict(
            lambda: {"requests": 0, "prompt_tokens": 0, "completion_tokens": 0, "cost_usd": 0.0}
        )
        for r in self.records.values():
            if not _matches(r, where):
                continue
            values = {
                "day": day_of(r.time),
                "model": r.model,
                "team": r.team_id,
                "key": r.key_id,
                "user": r.user_id,
            }
            row = totals[tuple(values[g] for g in groups)]
            row["requests"] += 1
            row["prompt_tokens"] += r.prompt_tokens
            row["completion_tokens"] += r.completion_tokens
            row["cost_usd"] += r.cost_usd
        if not groups and not totals:
            return []
        return [
            {**dict(zip(groups, key, strict=True)), **row}
            for key, row in sorted(totals.items(), key=lambda kv: [str(v) for v in kv[0]])
        ]

    async def spend_since(self, since: float, by: SpendScope = "team") -> dict[str, float]:
        spend: dict[str, float] = defaultdict(float)
        for r in self.records.values():
            holder = r.team_id if by == "team" else r.key_id
            if r.time >= since and holder is not None:
                spend[holder] += r.cost_usd
        return dict(spend)

    async def set_limits(self, setting: LimitSetting, actor: Actor) -> LimitSetting | None:
        before = self.limits.get((setting.scope, setting.scope_id))
        self.limits[(setting.scope, setting.scope_id)] = replace(setting)
        self.audit.append((actor, setting))
        return before

    async def limits_version(self) -> int:
        # Every change of limits is audited: the audit list doubles as the change log.
        return len(self.audit)

    async def limit_changes(self, since: int) -> LimitChanges | None:
        found: dict[tuple[str, str], LimitSetting | None] = {}
        for _, setting in self.audit[since:]:
            ref = (setting.scope, setting.scope_id)
            found[ref] = self.limits.get(ref)
        return LimitChanges(len(self.audit), found)

    async def limits_of(self, scope: str, scope_id: str) -> LimitSetting | None:
        return self.limits.get((scope, scope_id))

    async def all_limits(self) -> list[LimitSetting]:
        return list(self.limits.values())


def _matches(r: Any, where: UsageFilter) -> bool:
    return (
        r.time >= where.since
        and (where.until is None or r.time < where.until)
        and (where.team_id is None or r.team_id == where.team_id)
        and (where.key_ids is None or r.key_id in where.key_ids)
        and (where.user_id is None or r.user_id == where.user_id)
        and (where.model is None or r.model == where.model)
    )

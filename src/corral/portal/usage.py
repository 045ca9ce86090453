"""Usage rows from the admin API shaped for charts and tables (pure functions over plain data)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

WINDOWS = ("7d", "30d", "90d")


def _num(row: Mapping[str, Any], name: str) -> float:
    value = row.get(name)
    return float(value) if isinstance(value, int | float) else 0.0


def daily_series(rows: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Per-day tokens and cost, one series per model, for the usage charts.

    Returns ``{"days": [...], "models": [...], "tokens": {model: [...]}, "cost": {...},
    "totals": {...}}``; days and models sorted, missing days zero.
    """
    tokens: dict[str, dict[str, float]] = defaultdict(dict)
    cost: dict[str, dict[str, float]] = defaultdict(dict)
    totals = {"requests": 0.0, "prompt_tokens": 0.0, "completion_tokens": 0.0, "cost_usd": 0.0}
    days: set[str] = set()
    for row in rows:
        day, model = str(row.get("day", "")), str(row.get("model", "?"))
        days.add(day)
        used = _num(row, "prompt_tokens") + _num(row, "completion_tokens")
        tokens[model][day] = tokens[model].get(day, 0.0) + used
        cost[model][day] = cost[model].get(day, 0.0) + _num(row, "cost_usd")
        for name in totals:
            totals[name] += _num(row, name)
    ordered = sorted(days)
    models = sorted(tokens)
    return {
        "days": ordered,
        "models": models,
        "tokens": {m: [int(tokens[m].get(d, 0)) for d in ordered] for m in models},
        "cost": {m: [round(cost[m].get(d, 0.0), 6) for d in ordered] for m in models},
        "totals": {name: round(value, 6) for name, value in totals.items()},
    }


def by_member(rows: Iterable[Mapping[str, Any]], names: Mapping[str, str]) -> list[dict[str, Any]]:
    """One row per member and model (largest cost first), with the member's name filled in."""
    merged: dict[tuple[str, str], dict[str, Any]] = {}
    for row in rows:
        user = str(row.get("user") or "(service keys)")
        model = str(row.get("model", "?"))
        entry = merged.setdefault(
            (user, model),
            {
                "member": names.get(user, user),
                "model": model,
                "requests": 0,
                "tokens": 0,
                "cost_usd": 0.0,
            },
        )
        entry["requests"] += int(_num(row, "requests"))
        entry["tokens"] += int(_num(row, "prompt_tokens") + _num(row, "completion_tokens"))
        entry["cost_usd"] += _num(row, "cost_usd")
    return sorted(merged.values(), key=lambda e: (-e["cost_usd"], -e["tokens"], e["member"]))


def budget_view(limits: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The budget with what is left and the share used (for the meter), or None when unknown."""
    if limits is None:
        return None
    budget = limits.get("budget") or {}
    cap = budget.get("monthly_usd")
    spent = _num(budget, "spent_usd")
    view: dict[str, Any] = {
        "monthly_usd": cap,
        "spent_usd": spent,
        "resets_at": budget.get("resets_at"),
        "left_usd": None,
        "used_percent": None,
        "limits": limits.get("limits") or {},
    }
    if isinstance(cap, int | float) and cap > 0:
        view["left_usd"] = max(0.0, float(cap) - spent)
        view["used_percent"] = min(100, round(100 * spent / float(cap)))
    return view

"""Self-hosted cost attribution: a deployment's running cost per day, shared by token share.

For a model priced by its deployment (``Pricing.deployment``), a team's cost in one UTC day is

    deployment cost over the part of that day inside the report window
    × the team's tokens on the model that day / every team's tokens on the model that day

Tokens are prompt plus completion tokens. Hours in which nobody used the model are paid for but
attributed to no one; the current catalog's deployment cost is applied to the whole window.
List-priced models keep the cost the ledger recorded. Report rows are split by ``cost_basis``
(``list`` or ``attributed``) so a row never mixes the two.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from corral.catalog import DeploymentCost

DAY_S = 86400.0
SUMMED = ("requests", "prompt_tokens", "completion_tokens", "cost_usd")


def share_of(period_cost_usd: float, tokens: int, all_tokens: int) -> float:
    """One holder's part of a period's cost: ``cost × tokens / all_tokens`` (0 without tokens)."""
    if all_tokens <= 0:
        return 0.0
    return period_cost_usd * tokens / all_tokens


def day_cost(cost: DeploymentCost, day: str, since: float, until: float) -> float:
    """What the deployment costs in UTC ``day`` (``YYYY-MM-DD``), clipped to [since, until)."""
    start = datetime.strptime(day, "%Y-%m-%d").replace(tzinfo=UTC).timestamp()
    return cost.usd_between(max(start, since), min(start + DAY_S, until))


def day_model_tokens(rows: Iterable[Mapping[str, Any]]) -> dict[tuple[str, str], int]:
    """Tokens per (day, model) from report rows grouped by day and model."""
    totals: dict[tuple[str, str], int] = {}
    for row in rows:
        key = (str(row["day"]), str(row["model"]))
        totals[key] = totals.get(key, 0) + int(row["prompt_tokens"]) + int(row["completion_tokens"])
    return totals


def attribute(
    rows: Sequence[Mapping[str, Any]],
    all_tokens: Mapping[tuple[str, str], int],
    deployments: Mapping[str, DeploymentCost],
    *,
    groups: Sequence[str],
    since: float,
    until: float,
) -> list[dict[str, Any]]:
    """Report rows grouped by ``groups`` and cost basis, self-hosted models at attributed cost.

    ``rows`` are the ledger's rows for the report's filter grouped by ``groups`` plus day and
    model; ``all_tokens`` is every team's tokens per (day, model) in the window, unfiltered,
    because a team's share is of the whole model's use.
    """
    merged: dict[tuple[Any, ...], dict[str, Any]] = {}
    for row in rows:
        deployment = deployments.get(str(row["model"]))
        basis = "list" if deployment is None else "attributed"
        key = (*(row[g] for g in groups), basis)
        out = merged.setdefault(
            key,
            {**{g: row[g] for g in groups}, "cost_basis": basis, **dict.fromkeys(SUMMED, 0)},
        )
        for name in SUMMED[:3]:
            out[name] += int(row[name])
        out["cost_usd"] += _cost(row, deployment, all_tokens, since, until)
    ordered = sorted(merged.items(), key=lambda item: [str(v) for v in item[0]])
    return [{**row, "cost_usd": round(row["cost_usd"], 6)} for _, row in ordered]


def _cost(
    row: Mapping[str, Any],
    deployment: DeploymentCost | None,
    all_tokens: Mapping[tuple[str, str], int],
    since: float,
    until: float,
) -> float:
    if deployment is None:
        return float(row["cost_usd"])
    day, model = str(row["day"]), str(row["model"])
    tokens = int(row["prompt_tokens"]) + int(row["completion_tokens"])
    period = day_cost(deployment, day, since, until)
    # Rows written between the two queries could make a row outgrow its day's total.
    return share_of(period, tokens, max(tokens, all_tokens.get((day, model), 0)))

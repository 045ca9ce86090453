"""`corral usage` and `corral budget`: spend and limits per team, through the admin API."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

import typer

from corral.cli.admin import KeyOpt, OutOpt, Output, UrlOpt, _client, _col, _render, reporting
from corral.cli.names import Names

budget_app = typer.Typer(help="Show and set team budgets and limits.", no_args_is_help=True)


def limit_columns(names: Names) -> list[Any]:
    return [names.column("Team", "team"), *LIMIT_COLUMNS[1:]]


LIMIT_COLUMNS = [
    _col("Team", "team"),
    ("Budget $/month", lambda r: r["budget"]["monthly_usd"]),
    ("Spent $", lambda r: r["budget"]["spent_usd"]),
    ("Resets", lambda r: r["budget"]["resets_at"]),
    ("RPM", lambda r: r["limits"]["rpm"]),
    ("TPM", lambda r: r["limits"]["tpm"]),
    ("Concurrent", lambda r: r["limits"]["max_concurrent"]),
]


def _clear(what: str) -> Any:
    return typer.Option(help=f"Remove the {what} limit (no limit of its own).")


@budget_app.command("set")
def budget_set(
    *,
    team: Annotated[str, typer.Option("--team", help="Team name or id.")],
    monthly_usd: Annotated[
        float | None, typer.Option("--monthly-usd", help="USD per calendar month (UTC).")
    ] = None,
    rpm: Annotated[int | None, typer.Option(help="Requests per minute.")] = None,
    tpm: Annotated[int | None, typer.Option(help="Tokens per minute.")] = None,
    max_concurrent: Annotated[int | None, typer.Option(help="Requests in flight.")] = None,
    clear_budget: Annotated[bool, _clear("monthly budget")] = False,
    clear_rpm: Annotated[bool, _clear("requests-per-minute")] = False,
    clear_tpm: Annotated[bool, _clear("tokens-per-minute")] = False,
    clear_max_concurrent: Annotated[bool, _clear("concurrency")] = False,
    url: UrlOpt = None,
    api_key: KeyOpt = None,
    output: OutOpt = Output.table,
) -> None:
    """Change a team's monthly budget and limits: only the ones given change (--clear-* removes
    one); the gateway that takes the change applies it at once, others within seconds."""
    given = {
        "monthly_budget_usd": (monthly_usd, clear_budget, "--monthly-usd"),
        "rpm": (rpm, clear_rpm, "--rpm"),
        "tpm": (tpm, clear_tpm, "--tpm"),
        "max_concurrent": (max_concurrent, clear_max_concurrent, "--max-concurrent"),
    }
    body: dict[str, Any] = {}
    for field, (value, clear, option) in given.items():
        if value is not None and clear:
            raise typer.BadParameter(f"give {option} or --clear-{option[2:]}, not both")
        if value is not None or clear:
            body[field] = value
    if not body:
        raise typer.BadParameter(
            "nothing to change: give e.g. --monthly-usd 500, --rpm 600 or --clear-rpm"
        )
    with reporting(), _client(url, api_key) as api:
        _render(output, api.patch(f"/teams/{team}/limits", body), limit_columns(Names(api)))


@budget_app.command("show")
def budget_show(
    team: Annotated[str | None, typer.Option("--team", help="Team (default: your own).")] = None,
    url: UrlOpt = None,
    api_key: KeyOpt = None,
    output: OutOpt = Output.table,
) -> None:
    """Show a team's budget, spend this month, and limits."""
    path = f"/teams/{team}/limits" if team else "/limits/me"
    with reporting(), _client(url, api_key) as api:
        _render(output, api.get(path), limit_columns(Names(api)))


class UsageFormat(StrEnum):
    table = "table"
    csv = "csv"
    json = "json"


def usage(
    *,
    team: Annotated[str | None, typer.Option("--team", help="Team name or id.")] = None,
    since: Annotated[str, typer.Option(help="30d, 24h, Unix seconds or ISO 8601.")] = "30d",
    by: Annotated[str, typer.Option("--by", help="day, model, team, key, user.")] = "day,model",
    fmt: Annotated[UsageFormat | None, typer.Option("--format", help="table, csv or json.")] = None,
    output: Annotated[
        UsageFormat | None,
        typer.Option("--output", "-o", help="The same as --format, as on other commands."),
    ] = None,
    url: UrlOpt = None,
    api_key: KeyOpt = None,
) -> None:
    """Requests, tokens and cost, grouped (developers see their own, team-admins their team).

    Cost basis "list" is the model's list prices; "attributed" is a team's share, by tokens per
    day, of what a self-hosted deployment costs to run (its pricing.deployment in the catalog).
    """
    if fmt is not None and output is not None and fmt is not output:
        raise typer.BadParameter(f"--format {fmt} and --output {output} disagree; give one")
    chosen = fmt or output or UsageFormat.table
    params: dict[str, Any] = {"since": since, "group_by": by, "team": team}
    with reporting(), _client(url, api_key) as api:
        if chosen is UsageFormat.csv:
            for line in api.lines("/usage.csv", params):
                print(line)
            return
        groups = [g.strip() for g in by.split(",") if g.strip()]
        names = Names(api)
        columns = [
            names.column(g.title(), g) if g in ("team", "key", "user") else _col(g.title(), g)
            for g in groups
        ]
        columns += [_col("Requests", "requests"), _col("Prompt", "prompt_tokens")]
        columns += [_col("Completion", "completion_tokens"), _col("Cost $", "cost_usd")]
        columns += [_col("Cost basis", "cost_basis")]
        shown = Output.json if chosen is UsageFormat.json else Output.table
        _render(shown, api.get("/usage", params), columns)


def register(app: typer.Typer) -> None:
    """Add `corral usage` and `corral budget` to the main command."""
    app.add_typer(budget_app, name="budget")
    app.command("usage")(usage)

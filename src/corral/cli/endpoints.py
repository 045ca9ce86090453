"""`corral endpoints`: each model's replicas as a running Corral sees them (from /metrics)."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from corral.cli.address import DEFAULT_URL, metrics_url
from corral.cli.admin import OutOpt, Output
from corral.cli.top import ScrapeError, fetch

_FAMILIES = {
    "corral_endpoint_in_flight": "in_flight",
    "corral_endpoint_ejected": "ejected",
    "corral_endpoint_first_byte_seconds": "first_byte_s",
}


def endpoint_rows(metrics_text: str) -> list[dict[str, object]]:
    """One row per (model, replica) with in-flight, ejected and time-to-first-byte."""
    rows: dict[tuple[str, str], dict[str, object]] = {}
    for family in text_string_to_metric_families(metrics_text):
        field = _FAMILIES.get(family.name)
        if field is None:
            continue
        for sample in family.samples:
            key = (sample.labels.get("model", "?"), sample.labels.get("replica", "?"))
            row = rows.setdefault(key, {"model": key[0], "replica": key[1]})
            row[field] = sample.value
    return [rows[k] for k in sorted(rows)]


def endpoints(
    url: Annotated[
        str | None,
        typer.Option(
            envvar="CORRAL_URL",
            help=f"Corral's address (default: $CORRAL_URL, else {DEFAULT_URL}).",
        ),
    ] = None,
    output: OutOpt = Output.table,
) -> None:
    """Show every model's replicas: requests in flight, ejected or not, time to first byte."""
    try:
        rows = endpoint_rows(fetch(metrics_url(url)))
    except ScrapeError as exc:
        Console(stderr=True).print(f"[red]error:[/] {escape(str(exc))}", highlight=False)
        raise typer.Exit(2) from exc
    if output is Output.json:
        print(json.dumps(rows, indent=2))
        return
    table = Table("Model", "Replica", "In flight", "State", "First byte")
    for row in rows:
        first = row.get("first_byte_s")
        table.add_row(
            str(row["model"]),
            str(row["replica"]),
            f"{row.get('in_flight', 0):.0f}",
            "[red]ejected[/]" if row.get("ejected") else "[green]in rotation[/]",
            f"{float(first) * 1000:.1f} ms" if isinstance(first, float) else "-",
        )
    Console().print(table)

"""Reading the admin API's paged lists from the CLI: one page, or every page as it arrives."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from typing import Annotated, Any

import typer
from rich.console import Console

from corral.admin.client import AdminClient

LimitOpt = Annotated[int, typer.Option(min=1, max=1000, help="Records per page.")]
PrefixOpt = Annotated[str | None, typer.Option(help="Only names starting so.")]
PagesOpt = Annotated[
    bool, typer.Option("--all", help="Every page, each shown as it arrives (JSON: one per line).")
]
KeyPagesOpt = Annotated[
    bool,
    typer.Option("--all-pages", help="Every page, each shown as it arrives (JSON: one per line)."),
]
"""`key list` keeps `--all` for "include revoked and expired keys", as it always meant."""


def pages(
    api: AdminClient, path: str, params: Mapping[str, Any], *, limit: int, every: bool
) -> Iterator[dict[str, Any]]:
    """The first page of ``path``, or with ``every`` each page in turn (by its cursor)."""
    after: str | None = None
    while True:
        page: dict[str, Any] = api.get(path, {**params, "limit": limit, "after": after})
        yield page
        after = page.get("next_after")
        if not every or not after:
            return


def show_pages(
    found: Iterator[dict[str, Any]],
    *,
    as_json: bool,
    every: bool,
    render: Callable[[dict[str, Any], bool], None],
    err: Console,
) -> None:
    """Show pages: a table each (the header once), or JSON (one record a line with ``every``).

    ``render(page, first)`` draws one page as a table.
    """
    last: dict[str, Any] = {}
    for number, page in enumerate(found):
        last = page
        if as_json and every:
            for record in page["data"]:
                print(json.dumps(record, ensure_ascii=False), flush=True)
        elif as_json:
            print(json.dumps(page, indent=2, ensure_ascii=False))
        else:
            render(page, number == 0)
    if last.get("has_more") and not every:
        err.print("[dim]More records: raise --limit, or list every page with --all.[/]")

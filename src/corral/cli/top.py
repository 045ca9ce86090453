"""`corral top`: a live view of a running Corral's models, latency, tokens, errors and GPUs."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from typing import Annotated
from urllib.parse import urlsplit

import typer
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from corral.cli.address import DEFAULT_URL, metrics_url
from corral.observability.snapshot import (
    UNROUTED,
    Frame,
    Snapshot,
    combine,
    frame,
    parse_metrics,
)

_TIMEOUT_S = 5.0
_HEALTH = {1.0: ("healthy", "green"), 0.5: ("degraded", "yellow"), 0.0: ("faulty", "red")}

app = typer.Typer(help="A live view of a running Corral, read from its /metrics.")

Fetch = Callable[[str], str]


class ScrapeError(Exception):
    """A /metrics page could not be read; the message says which and why."""


def fetch(url: str) -> str:
    """The text of one /metrics page."""
    if urlsplit(url).scheme not in ("http", "https"):
        raise ScrapeError(f"{url}: use an http:// or https:// URL of a /metrics page.")
    try:
        # The scheme is checked above, so no file:// or custom-scheme reads (S310).
        with urllib.request.urlopen(url, timeout=_TIMEOUT_S) as response:  # noqa: S310 - http(s) only
            body: bytes = response.read()
    except urllib.error.HTTPError as exc:
        raise ScrapeError(f"{url} answered HTTP {exc.code}; is it a Corral /metrics URL?") from exc
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ScrapeError(
            f"Could not reach {url} ({reason}). Is Corral running? Start it with `corral up`, "
            "or point --url at its /metrics."
        ) from exc
    return body.decode("utf-8", "replace")


def scrape(urls: Sequence[str], get: Fetch = fetch) -> Snapshot:
    """One snapshot of every URL (a gateway, health agents), combined."""
    at = time.monotonic()
    parts = []
    for url in urls:
        try:
            parts.append(parse_metrics(get(url), at=at, source=urlsplit(url).netloc))
        except ValueError as exc:
            raise ScrapeError(f"{url} is not a Prometheus /metrics page: {exc}") from exc
    return combine(parts, at=at)


def _seconds(value: float | None, recent: bool) -> Text:
    if value is None:
        return Text("—", style="dim")
    text = f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"
    return Text(text, style="" if recent else "dim")


def _queue(waiting: float | None) -> Text:
    if waiting is None:  # no local engine /metrics among the URLs
        return Text("—", style="dim")
    return Text(f"{waiting:.0f}", style="yellow" if waiting else "")


def _models_table(shown: Frame) -> Table:
    table = Table(title="Models", title_justify="left", expand=True)
    for column in ("model", "req/s", "requests", "errors/s", "5xx %"):
        table.add_column(column, justify="left" if column == "model" else "right")
    for column in ("TTFT p50", "TTFT p99", "tok/s in", "tok/s out", "engine queue"):
        table.add_column(column, justify="right")
    for row in shown.rows:
        name = "(refused before routing)" if row.model == UNROUTED else row.model
        ratio = "—" if row.error_ratio is None else f"{row.error_ratio:.1%}"
        table.add_row(
            Text(name, style="dim" if row.model == UNROUTED else "bold"),
            f"{row.requests_per_s:.1f}",
            f"{row.requests:.0f}",
            Text(f"{row.errors_per_s:.1f}", style="red" if row.errors_per_s else ""),
            Text(ratio, style="red" if row.error_ratio else ""),
            _seconds(row.ttft_p50, row.ttft_recent),
            _seconds(row.ttft_p99, row.ttft_recent),
            f"{row.tokens_in_per_s:.0f}",
            f"{row.tokens_out_per_s:.0f}",
            _queue(row.engine_queue),
        )
    if not shown.rows:
        table.add_row(Text("no requests yet", style="dim"), *[""] * 9)
    return table


def _gpu_view(shown: Frame) -> RenderableType:
    if not shown.devices:
        return Text(
            "GPU health: no health agent metrics here "
            "(add --url for a node's health agent /metrics to see its devices).",
            style="dim",
        )
    table = Table(title="GPU health", title_justify="left")
    for column in ("node", "device", "health"):
        table.add_column(column)
    for device in shown.devices:
        word, colour = _HEALTH.get(device.health, (f"{device.health:g}", "yellow"))
        table.add_row(device.source, device.device, Text(word, style=colour))
    notes = []
    if shown.xids:
        counts = ", ".join(f"{code}×{n:.0f}" for code, n in sorted(shown.xids.items()))
        notes.append(Text(f"Xid events since start: {counts}", style="yellow"))
    if shown.breaker_open:
        notes.append(Text("Remediation breaker OPEN: a human must look and reset it.", "bold red"))
    return Group(table, *notes)


def render(shown: Frame, urls: Sequence[str]) -> RenderableType:
    """One frame of the view."""
    window = f"rates over {shown.interval:.1f} s" if shown.interval else "totals"
    header = Text.assemble(
        ("corral top", "bold"),
        f"  {', '.join(urls)}  ·  {window}  ·  in flight: {shown.in_flight:.0f}",
    )
    legend = Text("Dim TTFT: no requests in the last interval; shown since start.", style="dim")
    return Group(header, _models_table(shown), legend, _gpu_view(shown))


@app.callback(invoke_without_command=True)
def top(
    url: Annotated[
        list[str] | None,
        typer.Option(
            "--url",
            "-u",
            envvar="CORRAL_URL",
            help="Corral's address or a /metrics URL to read; repeat it for health agents and "
            f"local engines (default: $CORRAL_URL, else {DEFAULT_URL}).",
        ),
    ] = None,
    interval: Annotated[
        float,
        typer.Option(min=0.1, help="Seconds between refreshes (and between --once's scrapes)."),
    ] = 2.0,
    once: Annotated[bool, typer.Option("--once", help="Print one frame and exit.")] = False,
) -> None:
    """Models, requests/s, TTFT p50/p99, tokens/s, errors and GPU health, refreshed live.

    When the output is not a terminal (a pipe, a file), prints one snapshot and exits."""
    urls = [metrics_url(u) for u in url] if url else [metrics_url(None)]
    console = Console()
    try:
        previous = scrape(urls)
        if not once and not console.is_terminal:  # no screen to refresh: totals, once
            console.print(render(frame(None, previous), urls))
            return
        if once:
            time.sleep(interval)
            console.print(render(frame(previous, scrape(urls)), urls))
            return
        _live(console, urls, interval, previous)
    except ScrapeError as exc:
        Console(stderr=True).print(f"[red]✗[/] {exc}")
        raise typer.Exit(1) from exc
    except KeyboardInterrupt:
        return


def _live(console: Console, urls: Sequence[str], interval: float, previous: Snapshot) -> None:
    with Live(render(frame(None, previous), urls), console=console, screen=False) as live:
        while True:
            time.sleep(interval)
            try:
                current = scrape(urls)
            except ScrapeError as exc:
                live.update(Text(f"✗ {exc} (retrying every {interval:g} s)", style="red"))
                continue
            live.update(render(frame(previous, current), urls))
            previous = current

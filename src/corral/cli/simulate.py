"""`corral simulate`: replay a trace against a spec's autoscaler, with oracle and static beside."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from corral.control.planner.instances import load_price_table
from corral.control.planner.trace import read_azure_trace
from corral.control.spec import load_spec
from corral.errors import ConfigError
from corral.simulation.chart import terminal_chart
from corral.simulation.report import Figures, SloTarget
from corral.simulation.scenario import POLICIES, Scenario, SimulationReport, simulate


def simulate_command(
    spec_path: Annotated[
        Path, typer.Argument(help="Deployment spec (YAML).", exists=True, dir_okay=False)
    ],
    *,
    trace: Annotated[Path, typer.Option(help="Azure LLM trace CSV to replay.")],
    policy: Annotated[
        str | None,
        typer.Option(help=f"Autoscaler: {', '.join(POLICIES)}; default: the spec's runtime's."),
    ] = None,
    ttft_slo_s: Annotated[float, typer.Option(help="TTFT bound of the SLO, seconds.")] = 2.0,
    slo_percentile: Annotated[
        float, typer.Option(help="Percentile of a minute's TTFTs that must meet the bound.")
    ] = 95.0,
    spot_interruptions_per_hour: Annotated[
        float, typer.Option(help="Spot reclaims per spot node-hour (Poisson).")
    ] = 0.0,
    spot_notice_s: Annotated[float, typer.Option(help="Notice before a reclaim.")] = 120.0,
    spot_unavailable_share: Annotated[
        float, typer.Option(help="Share of spot launches that fall back to on-demand.")
    ] = 0.0,
    seed: Annotated[int, typer.Option(help="Seed for routing ties and spot reclaims.")] = 0,
    prices: Annotated[
        Path | None, typer.Option(help="Instance price table (default: the packaged one).")
    ] = None,
    output_format: Annotated[
        str, typer.Option("--format", help="table (with a chart) or json.")
    ] = "table",
    per_minute: Annotated[bool, typer.Option(help="With json: per-minute figures.")] = False,
) -> None:
    """Simulate the spec's autoscaling on a trace: GPU-hours, cost, TTFT/TPOT and SLO minutes."""
    if output_format not in ("table", "json"):
        raise ConfigError(f"--format must be table or json, not {output_format!r}")
    if not 0 < slo_percentile <= 100 or ttft_slo_s <= 0:
        raise ConfigError("--slo-percentile must be in (0, 100] and --ttft-slo-s above 0")
    if spot_interruptions_per_hour < 0 or not 0 <= spot_unavailable_share <= 1:
        raise ConfigError(
            "--spot-interruptions-per-hour must be 0 or more and --spot-unavailable-share "
            "within 0..1"
        )
    scenario = Scenario(
        policy=policy,
        slo=SloTarget(ttft_slo_s, slo_percentile),
        spot_interruptions_per_hour=spot_interruptions_per_hour,
        spot_notice_s=spot_notice_s,
        spot_unavailable_share=spot_unavailable_share,
        seed=seed,
    )
    requests = read_azure_trace(trace)
    if not requests:
        raise ConfigError(f"{trace} holds no requests")
    report = simulate(load_spec(spec_path), requests, load_price_table(prices), scenario)
    if output_format == "json":
        typer.echo(json.dumps(report.as_json(per_minute=per_minute), indent=2))
        return
    print_report(Console(), report, scenario.slo)


def print_report(console: Console, report: SimulationReport, slo: SloTarget) -> None:
    """The run and both references side by side, then the chart."""
    table = Table(
        "policy",
        "GPU-h",
        "× oracle",
        "cost $",
        f"SLO min (p{slo.percentile:g} ≤ {slo.ttft_s:g}s)",
        "TTFT p50/p99 s",
        "TPOT p50/p99 ms",
        "queue mean s",
        "refused",
        title=f"{report.spec_name} on {report.instance} ({report.devices_per_replica} device(s) "
        "per replica)",
    )
    oracle_hours = report.oracle.gpu_hours
    for row in (report.run, report.oracle, report.static):
        table.add_row(*_row(row, oracle_hours))
    console.print(table)
    saving = 1 - report.run.cost_usd / report.static.cost_usd if report.static.cost_usd else 0.0
    console.print(
        f"cost {report.run.cost_usd:.2f} $ vs static on-demand {report.static.cost_usd:.2f} $ "
        f"({saving:.0%} less); spot share {report.spot_share:.0%}; "
        f"{report.nodes_launched} nodes launched"
    )
    for line in terminal_chart(report):
        console.print(line, highlight=False)


def _row(figures: Figures, oracle_hours: float) -> list[str]:
    ratio = figures.gpu_hours / oracle_hours if oracle_hours else float("nan")
    return [
        figures.name,
        f"{figures.gpu_hours:.2f}",
        f"{ratio:.2f}",
        f"{figures.cost_usd:.2f}",
        f"{figures.slo_minutes_share:.1%}",
        f"{figures.ttft_p50_s:.2f}/{figures.ttft_p99_s:.2f}",
        f"{figures.tpot_p50_s * 1000:.0f}/{figures.tpot_p99_s * 1000:.0f}",
        f"{figures.queue_mean_s:.2f}",
        str(figures.refused),
    ]

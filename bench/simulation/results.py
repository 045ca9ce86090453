"""The tables in RESULTS.md: policy × trace → GPU-hours, × oracle, × static, SLO minutes, cost.

    PYTHONPATH=src python bench/simulation/results.py > bench/simulation/results.md

"shipped before" is the autoscaling Corral rendered before issue 23 (target 16 ongoing
requests, upscale 30 s, downscale 600 s, an empty node kept 300 s by KubeRay + 300 s by
Karpenter); "default" is what ``corral deploy`` renders now for the same spec.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from sweep import CODE_TRACE, slo_share, traces, with_replicas

from corral.control.planner.instances import load_price_table
from corral.control.planner.trace import TraceRequest
from corral.control.spec import DeploymentSpec, load_spec
from corral.simulation.references import references
from corral.simulation.report import Figures, SloTarget
from corral.simulation.scenario import (
    Scenario,
    SimulationReport,
    simulate,
    simulate_policy,
    simulate_schedule,
)

HERE = Path(__file__).parent
SPECS = ["llama-8b-l40s", "llama-3b-l4", "llama-8b-l40s-hpa"]
SLO = SloTarget(ttft_s=2.0, percentile=95.0)
BEFORE = {
    "target_ongoing_requests": 16,
    "upscale_delay_s": 30.0,
    "downscale_delay_s": 600.0,
    "upscaling_factor": 1.0,
}
BEFORE_NODE_IDLE_S = {"rayservice": 600.0, "deployment": 300.0}
"""KubeRay's idle timeout (300 s, Ray runtimes only) plus Karpenter's consolidateAfter (300 s)."""
HEADER = (
    "| spec | trace | policy | GPU-h | × oracle | × static | SLO min (p95 ≤ 2 s) | "
    "SLO min (p95 ≤ 5 s) | cost $ | saving vs static on-demand | TTFT p50 / p99 s | refused |"
)


def row(spec: str, trace: str, name: str, f: Figures, report: SimulationReport) -> str:
    oracle, static = report.oracle, report.static
    saving = 1 - f.cost_usd / static.cost_usd
    return (
        f"| {spec} | {trace} | {name} | {f.gpu_hours:.2f} | {f.gpu_hours / oracle.gpu_hours:.2f} "
        f"| {f.gpu_hours / static.gpu_hours:.2f} | {slo_share(f, 2.0):.1%} | "
        f"{slo_share(f, 5.0):.1%} | {f.cost_usd:.2f} | {saving:+.0%} | "
        f"{f.ttft_p50_s:.2f} / {f.ttft_p99_s:.1f} | {f.refused} |"
    )


def table_for(spec: DeploymentSpec, loaded: dict[str, list[TraceRequest]]) -> list[str]:
    prices = load_price_table()
    lines = []
    for trace_name, trace in loaded.items():
        started = time.process_time()
        report = simulate(spec, trace, prices, Scenario(slo=SLO))
        before_spec = with_replicas(spec, **BEFORE)
        before = simulate_policy(
            before_spec,
            trace,
            prices,
            Scenario(slo=SLO, node_idle_s=BEFORE_NODE_IDLE_S[spec.engine.runtime]),
        )
        for name, figures in (
            (f"{report.policy}, shipped before", before),
            (f"{report.policy}, default now", report.run),
            ("oracle (per minute, no start-up)", report.oracle),
            (f"static peak ({report.references.static_replicas}, on-demand)", report.static),
        ):
            lines.append(row(spec.name, trace_name, name, figures, report))
        print(
            f"{spec.name} {trace_name}: {time.process_time() - started:.1f} s CPU", file=sys.stderr
        )
    return lines


def static_curve(spec: DeploymentSpec, trace: list[TraceRequest], most: int) -> list[str]:
    """Static N replicas (no start-up): the SLO minutes each N buys."""
    prices = load_price_table()
    lines = [
        "| static replicas | GPU-h | SLO min (p95 ≤ 2 s) | SLO min (p95 ≤ 5 s) |",
        "|---|---|---|---|",
    ]
    minutes = len(references(spec, trace).per_minute)
    for count in range(1, most + 1):
        f = simulate_schedule(spec, trace, prices, [count] * minutes, Scenario(slo=SLO))
        lines.append(
            f"| {count} | {f.gpu_hours:.2f} | {slo_share(f, 2.0):.1%} | {slo_share(f, 5.0):.1%} |"
        )
    return lines


def main() -> None:
    loaded = traces(CODE_TRACE)
    if sys.argv[1:] == ["--static-only"]:
        _print_static(loaded)
        return
    print(HEADER)
    print("|---" * 12 + "|")
    for name in SPECS:
        for line in table_for(load_spec(HERE / "specs" / f"{name}.yaml"), loaded):
            print(line, flush=True)
    print()
    _print_static(loaded)


def _print_static(loaded: dict[str, list[TraceRequest]]) -> None:
    print("Static provisioning on the code trace (llama-8b-l40s):")
    print()
    for line in static_curve(load_spec(HERE / "specs" / "llama-8b-l40s.yaml"), loaded["code"], 16):
        print(line, flush=True)


if __name__ == "__main__":
    main()

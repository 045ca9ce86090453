"""A terminal chart of load and replicas per minute (no plotting library needed)."""

from __future__ import annotations

from collections.abc import Sequence

from corral.simulation.scenario import SimulationReport

BARS = " ▁▂▃▄▅▆▇█"


def sparkline(values: Sequence[float], top: float | None = None) -> str:
    """One character per value, scaled to ``top`` (default: the largest value)."""
    peak = top if top is not None else max(values, default=0.0)
    if peak <= 0:
        return BARS[0] * len(values)
    steps = len(BARS) - 1
    return "".join(BARS[min(steps, round(v / peak * steps))] for v in values)


def terminal_chart(report: SimulationReport) -> list[str]:
    """Rows: arrivals, the oracle's replicas, the run's mean ready replicas, SLO misses."""
    minutes = report.run.minutes
    ready = [m.ready_replicas for m in minutes]
    oracle = [float(n) for n in report.references.per_minute][: len(minutes)]
    top = max(max(ready, default=0.0), max(oracle, default=0.0), 1.0)
    misses = "".join(" " if m.meets_slo or not m.arrivals else "x" for m in minutes)
    width = max(len(label) for label in ("requests/min", "oracle", report.policy, "SLO miss"))
    rows = [
        ("requests/min", sparkline([float(m.arrivals) for m in minutes])),
        ("oracle", sparkline(oracle, top)),
        (report.policy, sparkline(ready, top)),
        ("SLO miss", misses),
    ]
    lines = [f"{label:>{width}} │{row}│" for label, row in rows]
    lines.append(f"{'':>{width}}  one column per minute; replicas scaled to {top:.0f}")
    return lines

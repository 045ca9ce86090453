"""Figures from a run: GPU-hours, cost, TTFT/TPOT percentiles, SLO minutes, queueing, refusals."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from corral.simulation.engine import SimRequest
from corral.simulation.simulator import TIMELINE_S, LoopOutcome

MINUTE_S = 60.0


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0-100) of ``values``; NaN for none."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


@dataclass(frozen=True, slots=True)
class SloTarget:
    """A minute meets the SLO when this percentile of its requests' TTFT is within the bound
    (a refused request counts as missing it). Minutes without arrivals are not counted."""

    ttft_s: float = 2.0
    percentile: float = 95.0


@dataclass(frozen=True, slots=True)
class Minute:
    """One minute of the trace."""

    minute: int
    arrivals: int
    ttft_p: float
    """The SLO percentile of TTFT for requests arriving this minute (inf with refusals)."""
    meets_slo: bool
    ready_replicas: float
    """Mean ready replicas over the minute."""
    tpot_p: float = math.nan
    """The same percentile of time per output token for requests arriving this minute."""


@dataclass(frozen=True, slots=True)
class Figures:
    """What one provisioning policy did on the trace."""

    name: str
    gpu_hours: float
    cost_usd: float
    ttft_p50_s: float
    ttft_p90_s: float
    ttft_p99_s: float
    tpot_p50_s: float
    tpot_p99_s: float
    queue_mean_s: float
    """Time from arrival to a replica taking the request (gateway/proxy queue and cold start)."""
    queue_p99_s: float
    slo_minutes_share: float
    completed: int
    refused: int
    interrupted: int
    minutes: list[Minute]

    def as_json(self, *, per_minute: bool = False) -> dict[str, object]:
        data: dict[str, object] = {
            "gpu_hours": round(self.gpu_hours, 4),
            "cost_usd": round(self.cost_usd, 4),
            "ttft_p50_s": _num(self.ttft_p50_s),
            "ttft_p90_s": _num(self.ttft_p90_s),
            "ttft_p99_s": _num(self.ttft_p99_s),
            "tpot_p50_s": _num(self.tpot_p50_s),
            "tpot_p99_s": _num(self.tpot_p99_s),
            "queue_mean_s": _num(self.queue_mean_s),
            "queue_p99_s": _num(self.queue_p99_s),
            "slo_minutes_share": round(self.slo_minutes_share, 4),
            "completed": self.completed,
            "refused": self.refused,
            "interrupted": self.interrupted,
        }
        if per_minute:
            data["per_minute"] = [
                {
                    "minute": m.minute,
                    "arrivals": m.arrivals,
                    "ttft_p_s": _num(m.ttft_p),
                    "tpot_p_s": _num(m.tpot_p),
                    "meets_slo": m.meets_slo,
                    "ready_replicas": round(m.ready_replicas, 2),
                }
                for m in self.minutes
            ]
        return data


def _num(value: float) -> float | None:
    return None if math.isnan(value) or math.isinf(value) else round(value, 4)


def figures(
    name: str, outcome: LoopOutcome, slo: SloTarget, *, gpu_hours: float, cost_usd: float
) -> Figures:
    """Latency and SLO figures of ``outcome``, with the GPU-hours and cost it is charged."""
    done = [r for r in outcome.requests if r.finished_s is not None]
    ttft = [_ttft(r) for r in done]
    tpot = [_tpot(r) for r in done if r.output_tokens > 1]
    waits = [r.dispatched_s - r.arrival_s for r in done if r.dispatched_s is not None]
    minutes = _minutes(outcome, slo)
    busy = [m for m in minutes if m.arrivals]
    share = sum(m.meets_slo for m in busy) / len(busy) if busy else 1.0
    return Figures(
        name=name,
        gpu_hours=gpu_hours,
        cost_usd=cost_usd,
        ttft_p50_s=percentile(ttft, 50),
        ttft_p90_s=percentile(ttft, 90),
        ttft_p99_s=percentile(ttft, 99),
        tpot_p50_s=percentile(tpot, 50),
        tpot_p99_s=percentile(tpot, 99),
        queue_mean_s=sum(waits) / len(waits) if waits else math.nan,
        queue_p99_s=percentile(waits, 99),
        slo_minutes_share=share,
        completed=len(done),
        refused=sum(1 for r in outcome.requests if r.refused),
        interrupted=outcome.interrupted,
        minutes=minutes,
    )


def _ttft(request: SimRequest) -> float:
    assert request.first_token_s is not None
    return request.first_token_s - request.arrival_s


def _tpot(request: SimRequest) -> float:
    assert request.first_token_s is not None
    assert request.finished_s is not None
    return (request.finished_s - request.first_token_s) / (request.output_tokens - 1)


def _minutes(outcome: LoopOutcome, slo: SloTarget) -> list[Minute]:
    count = max(1, math.ceil(outcome.horizon_s / MINUTE_S))
    ttfts: list[list[float]] = [[] for _ in range(count)]
    tpots: list[list[float]] = [[] for _ in range(count)]
    for request in outcome.requests:
        minute = min(count - 1, int(request.arrival_s // MINUTE_S))
        missing = request.refused or request.first_token_s is None
        ttfts[minute].append(math.inf if missing else _ttft(request))
        if request.finished_s is not None and request.output_tokens > 1:
            tpots[minute].append(_tpot(request))
    ready = [0.0] * count
    for point in outcome.timeline:
        minute = min(count - 1, int(point.at_s // MINUTE_S))
        ready[minute] += point.ready * TIMELINE_S / MINUTE_S
    rows = []
    for minute, values in enumerate(ttfts):
        p = percentile(values, slo.percentile)
        meets = not values or p <= slo.ttft_s
        tpot = percentile(tpots[minute], slo.percentile)
        rows.append(Minute(minute, len(values), p, meets, ready[minute], tpot))
    return rows

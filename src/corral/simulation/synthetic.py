"""A seeded synthetic trace: a compressed diurnal cycle with bursts, in the Azure CSV format."""

from __future__ import annotations

import csv
import datetime as dt
import math
import random
from dataclasses import dataclass
from pathlib import Path

from corral.control.planner.trace import TraceRequest


@dataclass(frozen=True, slots=True)
class DiurnalBursty:
    """Arrivals follow a sine "day" between a trough and a peak rate; bursts multiply the rate
    for a short while; prompt and output lengths are log-normal (chat-like by default)."""

    duration_s: float = 7200.0
    day_s: float = 7200.0
    """Length of one trough-peak-trough cycle (a day compressed)."""
    trough_per_s: float = 0.3
    peak_per_s: float = 5.0
    bursts_per_hour: float = 6.0
    burst_s: float = 40.0
    burst_factor: float = 4.0
    prompt_median: float = 1000.0
    prompt_sigma: float = 0.9
    output_median: float = 180.0
    output_sigma: float = 0.8
    max_prompt: int = 7000
    max_output: int = 1000

    def rate(self, at_s: float, bursts: list[float]) -> float:
        phase = 0.5 - 0.5 * math.cos(2 * math.pi * at_s / self.day_s)
        base = self.trough_per_s + (self.peak_per_s - self.trough_per_s) * phase
        bursting = any(start <= at_s < start + self.burst_s for start in bursts)
        return base * (self.burst_factor if bursting else 1.0)


def diurnal_bursty(shape: DiurnalBursty, seed: int) -> list[TraceRequest]:
    """Requests from a non-homogeneous Poisson process (thinning), reproducible from ``seed``."""
    rng = random.Random(seed)  # noqa: S311 - a reproducible workload, not a secret
    bursts = _burst_starts(shape, rng)
    ceiling = shape.peak_per_s * shape.burst_factor
    at = 0.0
    requests: list[TraceRequest] = []
    while True:
        at += rng.expovariate(ceiling)
        if at >= shape.duration_s:
            return requests
        if rng.random() * ceiling <= shape.rate(at, bursts):
            requests.append(
                TraceRequest(
                    at,
                    _length(shape.prompt_median, shape.prompt_sigma, shape.max_prompt, rng),
                    _length(shape.output_median, shape.output_sigma, shape.max_output, rng),
                )
            )


def _burst_starts(shape: DiurnalBursty, rng: random.Random) -> list[float]:
    starts: list[float] = []
    at = 0.0
    rate = shape.bursts_per_hour / 3600
    while rate > 0:
        at += rng.expovariate(rate)
        if at >= shape.duration_s:
            return starts
        starts.append(at)
    return starts


def _length(median: float, sigma: float, most: int, rng: random.Random) -> int:
    return max(1, min(most, round(rng.lognormvariate(math.log(median), sigma))))


def write_azure_trace(path: Path, requests: list[TraceRequest]) -> None:
    """Write ``requests`` as an Azure LLM trace CSV (what ``read_azure_trace`` reads)."""
    start = dt.datetime(2024, 1, 1)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["TIMESTAMP", "ContextTokens", "GeneratedTokens"])
        for request in requests:
            stamp = start + dt.timedelta(seconds=request.at_s)
            writer.writerow(
                [
                    stamp.strftime("%Y-%m-%d %H:%M:%S.%f") + "0",
                    request.prompt_tokens,
                    request.output_tokens,
                ]
            )

"""Replay a request trace: replicas needed per window, GPU-hours autoscaled versus static peak."""

from __future__ import annotations

import csv
import datetime as dt
import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from corral.control.planner.throughput import Throughput
from corral.errors import ConfigError


@dataclass(frozen=True, slots=True)
class TraceRequest:
    """One request: seconds since the trace began, prompt and output tokens."""

    at_s: float
    prompt_tokens: int
    output_tokens: int


def read_azure_trace(path: Path) -> list[TraceRequest]:
    """Read an Azure LLM inference trace CSV (TIMESTAMP, ContextTokens, GeneratedTokens)."""
    try:
        with path.open(newline="") as handle:
            rows = list(csv.DictReader(handle))
    except OSError as exc:
        raise ConfigError(f"cannot read trace {path}: {exc.strerror}") from exc
    try:
        stamps = [_timestamp(r["TIMESTAMP"]) for r in rows]
        start = min(stamps)
        return [
            TraceRequest(
                (s - start).total_seconds(), int(r["ContextTokens"]), int(r["GeneratedTokens"])
            )
            for s, r in zip(stamps, rows, strict=True)
        ]
    except (KeyError, ValueError) as exc:
        raise ConfigError(
            f"{path} is not an Azure LLM trace (columns TIMESTAMP, ContextTokens, "
            f"GeneratedTokens): {exc}"
        ) from exc


def _timestamp(text: str) -> dt.datetime:
    # The trace has 7 fractional digits; strptime takes at most 6.
    head, _, frac = text.partition(".")
    return dt.datetime.strptime(f"{head}.{frac[:6] or '0'}", "%Y-%m-%d %H:%M:%S.%f")


@dataclass(frozen=True, slots=True)
class ReplayResult:
    """Replicas per window and what the two provisioning policies cost in device-hours."""

    window_s: float
    replicas: list[int]
    """Replicas running in each window under autoscaling (after the scale-down delay)."""
    devices_per_replica: int

    @property
    def duration_h(self) -> float:
        return len(self.replicas) * self.window_s / 3600

    @property
    def peak_replicas(self) -> int:
        return max(self.replicas, default=0)

    @property
    def autoscaled_device_hours(self) -> float:
        return sum(self.replicas) * self.window_s * self.devices_per_replica / 3600

    @property
    def static_device_hours(self) -> float:
        return self.peak_replicas * self.duration_h * self.devices_per_replica


def replay(
    requests: Iterable[TraceRequest],
    throughput: Throughput,
    *,
    devices_per_replica: int,
    window_s: float = 60.0,
    utilisation: float = 0.7,
    min_replicas: int = 1,
    downscale_delay_s: float = 600.0,
) -> ReplayResult:
    """Replicas each window needs to serve its requests at ``utilisation``; autoscaling keeps a
    replica until demand has stayed lower for ``downscale_delay_s``. Static provisioning runs
    the peak all the time."""
    demand: dict[int, float] = {}
    for req in requests:
        window = int(req.at_s // window_s)
        demand[window] = demand.get(window, 0.0) + throughput.replica_seconds(
            req.prompt_tokens, req.output_tokens
        )
    windows = max(demand, default=-1) + 1
    needed = [
        max(min_replicas, math.ceil(demand.get(w, 0.0) / (window_s * utilisation)))
        for w in range(windows)
    ]
    hold = max(1, math.ceil(downscale_delay_s / window_s))
    running = [max(needed[max(0, w - hold + 1) : w + 1]) for w in range(windows)]
    return ReplayResult(window_s, running, devices_per_replica)

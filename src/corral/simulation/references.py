"""The two yardsticks: static peak provisioning and the per-minute oracle (``corral plan``'s
replay with no hold and no floor), and an autoscaler that follows a fixed schedule."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from corral.control.planner.plan import Workload
from corral.control.planner.trace import ReplayResult, TraceRequest, replay
from corral.control.spec import DeploymentSpec
from corral.simulation.autoscalers import LoadSample
from corral.simulation.replica import planner_throughput

WINDOW_S = 60.0
"""The oracle resizes once a minute."""


@dataclass(frozen=True, slots=True)
class References:
    """Replicas per minute for the oracle, and the static peak."""

    oracle: ReplayResult

    @property
    def per_minute(self) -> list[int]:
        return self.oracle.replicas

    @property
    def oracle_gpu_hours(self) -> float:
        return self.oracle.autoscaled_device_hours

    @property
    def static_replicas(self) -> int:
        return max(1, self.oracle.peak_replicas)

    @property
    def static_gpu_hours(self) -> float:
        return self.static_replicas * self.oracle.duration_h * self.oracle.devices_per_replica


def references(
    spec: DeploymentSpec, trace: Sequence[TraceRequest], utilisation: float | None = None
) -> References:
    """Capacity each minute needs at the planner's utilisation, with the planner's throughput
    for the trace's mean prompt and output (as ``corral plan`` prices a workload)."""
    planned = Workload() if utilisation is None else Workload(utilisation=utilisation)
    count = max(1, len(trace))
    prompt = sum(r.prompt_tokens for r in trace) / count
    output = sum(r.output_tokens for r in trace) / count
    speed = planner_throughput(
        spec, batch=spec.engine.max_num_seqs, context_tokens=prompt + output / 2
    )
    result = replay(
        trace,
        speed,
        devices_per_replica=max(1, spec.accelerator.devices),
        window_s=WINDOW_S,
        utilisation=planned.utilisation,
        min_replicas=0,
        downscale_delay_s=0.0,
    )
    return References(result)


class ScheduleAutoscaler:
    """Follows a replica count per window; with zero start-up it is the oracle (or static)."""

    sample_interval_s = 3600.0

    def __init__(self, name: str, per_window: Sequence[int], window_s: float = WINDOW_S) -> None:
        self.name = name
        self.interval_s = window_s
        self._per_window = list(per_window)

    def observe(self, sample: LoadSample) -> None:
        """A schedule reads no load."""

    def decide(self, now: float, running: int, target: int) -> int:
        window = int(now // self.interval_s)
        if window < len(self._per_window):
            return self._per_window[window]
        # Past the schedule: keep one replica so requests still in flight can finish.
        return max(1, self._per_window[-1]) if self._per_window else max(1, target)

"""The oracle and static references on a tiny trace, computed by hand."""

from __future__ import annotations

import pytest

from corral.control.planner.throughput import Throughput
from corral.control.planner.trace import TraceRequest, replay
from corral.control.spec import parse_spec
from corral.simulation.references import References, ScheduleAutoscaler, references
from corral.simulation.replica import planner_throughput


def _trace() -> list[TraceRequest]:
    # Minute 0: 3 requests; minute 1: none; minute 2: 30 requests.
    return [TraceRequest(10.0 * i, 1000, 100) for i in range(3)] + [
        TraceRequest(120.0 + i, 1000, 100) for i in range(30)
    ]


def test_oracle_and_static_by_hand() -> None:
    """Each request takes 1000/1000 + 100/100 = 2 replica-seconds. At utilisation 0.5 a
    replica gives 30 s a minute: minute 0 needs ceil(6/30) = 1, minute 1 needs 0, minute 2
    needs ceil(60/30) = 2. Oracle: 3 replica-minutes × 2 devices = 0.1 GPU-hours. Static:
    peak 2 × 3 minutes × 2 devices = 0.2 GPU-hours."""
    refs = References(
        replay(
            _trace(),
            Throughput(prefill_tokens_per_s=1000, decode_tokens_per_s=100),
            devices_per_replica=2,
            utilisation=0.5,
            min_replicas=0,
            downscale_delay_s=0.0,
        )
    )
    assert refs.per_minute == [1, 0, 2]
    assert refs.oracle_gpu_hours == pytest.approx(3 * 2 / 60)
    assert refs.static_replicas == 2
    assert refs.static_gpu_hours == pytest.approx(2 * 3 * 2 / 60)


def test_spec_references_use_the_planners_throughput_for_the_traces_mean_request() -> None:
    spec = parse_spec(
        {
            "name": "m",
            "model": {"source": "meta-llama/Llama-3.2-3B-Instruct"},
            "accelerator": {"type": "l4"},
        }
    )
    speed = planner_throughput(spec, batch=16, context_tokens=1000 + 100 / 2)
    demand = 30 * speed.replica_seconds(1000, 100)
    refs = references(spec, _trace(), utilisation=0.7)
    assert refs.per_minute[2] == -(-demand // (60 * 0.7))
    assert refs.per_minute[1] == 0  # the oracle keeps no floor in an empty minute


def test_schedule_autoscaler_follows_its_minutes_and_keeps_one_after() -> None:
    schedule = ScheduleAutoscaler("oracle", [1, 0, 2])
    assert [schedule.decide(t, 0, 0) for t in (0.0, 59.9, 60.0, 150.0, 500.0)] == [1, 1, 0, 2, 2]
    assert ScheduleAutoscaler("o", [3, 0]).decide(200.0, 0, 0) == 1

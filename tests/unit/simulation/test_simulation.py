"""The whole loop: start-up after a scale-up, cold start and its hold, spot reclaims, billing."""

from __future__ import annotations

import pytest

from corral.control.planner.trace import TraceRequest
from corral.settings import ColdStartSettings
from corral.simulation.fleet import CapacitySettings
from corral.simulation.references import ScheduleAutoscaler
from corral.simulation.startup import StartupModel
from support.simulation import model, run

STARTUP = StartupModel(node_provision_s=60.0, image_pull_s=20.0, weight_load_s=15.0, warmup_s=5.0)
"""A fresh node: 60 s to Ready, then 20 + 15 + 5 s; a warm node: 15 + 5 s."""


def test_a_replica_scaled_up_on_a_new_node_serves_after_every_start_up_stage() -> None:
    """Zero replicas until minute 1, then one: its node launches at 60 s and the replica serves
    at 60 + 60 + 20 + 15 + 5 = 160 s; a request sent at 61 s waits for it (held: cold start)."""
    outcome = run(
        [TraceRequest(61.0, 1000, 1)],
        ScheduleAutoscaler("step", [0, 1, 1, 1]),
        startup=STARTUP,
        initial=0,
        horizon_s=240.0,
    )
    (request,) = outcome.requests
    assert request.dispatched_s == pytest.approx(160.0)
    assert request.first_token_s == pytest.approx(161.0)
    # One node, launched at 60 s, billed to the 240 s horizon: 180 s of one L4.
    assert outcome.device_hours == pytest.approx(180 / 3600)


def test_the_gateway_refuses_a_held_request_after_max_wait() -> None:
    from dataclasses import replace

    from corral.simulation.simulator import LoopSettings

    assert LoopSettings(1, 0).cold_start.max_wait_s == ColdStartSettings().max_wait_s
    outcome = run(
        [TraceRequest(61.0, 1000, 1)],
        ScheduleAutoscaler("step", [0, 1, 1, 1]),
        startup=replace(STARTUP, node_provision_s=200.0),
        initial=0,
        horizon_s=480.0,
    )
    # Ready only at 60 + 200 + 40 = 300 s: past the 120 s hold from 61 s.
    assert outcome.requests[0].refused


def test_an_empty_node_is_billed_until_its_idle_timeout() -> None:
    """One replica for minute 0 only: its node empties at 60 s and lives 100 s more."""
    outcome = run(
        [TraceRequest(1.0, 1000, 1)],
        ScheduleAutoscaler("short", [1, 0, 0, 0, 0]),
        capacity=CapacitySettings(spot_first=False, node_idle_s=100.0),
        horizon_s=300.0,
    )
    assert outcome.device_hours == pytest.approx(160 / 3600)
    assert outcome.cost_usd == pytest.approx(160 / 3600 * 0.8048)


def test_a_spot_reclaim_retries_its_requests_and_replaces_the_node() -> None:
    """Reclaims every few minutes on spot nodes: requests caught on a reclaimed node are
    retried elsewhere, every request still finishes, and replacements are launched."""
    trace = [TraceRequest(float(t), 4000, 200) for t in range(0, 1800, 2)]
    outcome = run(
        trace,
        ScheduleAutoscaler("two", [2] * 31),
        replica=model(max_num_seqs=8),
        startup=STARTUP,
        capacity=CapacitySettings(
            spot_first=True, spot_interruptions_per_hour=12.0, spot_notice_s=30.0, node_idle_s=0.0
        ),
        initial=2,
        horizon_s=1860.0,
    )
    assert outcome.interrupted > 0
    assert outcome.nodes_launched > 2
    assert all(r.finished_s is not None for r in outcome.requests)
    assert outcome.unfinished == 0  # every finish counted, reclaimed mid-step or not
    assert outcome.spot_share == pytest.approx(1.0)


def test_a_fixed_size_deployment_is_simulated_at_its_size() -> None:
    from corral.control.spec import parse_spec
    from corral.simulation.scenario import make_autoscaler

    spec = parse_spec(
        {
            "name": "m",
            "model": {"source": "meta-llama/Llama-3.2-3B-Instruct"},
            "engine": {"runtime": "deployment"},
            "replicas": {"min": 2, "max": 2},
        }
    )
    fixed = make_autoscaler(spec, "hpa")
    assert [fixed.decide(t, 0, 0) for t in (0.0, 600.0, 3600.0)] == [2, 2, 2]

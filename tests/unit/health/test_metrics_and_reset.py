"""Metrics from one round, and the command-line GPU reset."""

from __future__ import annotations

import sys

import pytest
from prometheus_client import CollectorRegistry

from corral.errors import PermanentError, TemporaryError
from corral.health.metrics import HealthMetrics
from corral.health.observations import (
    DeviceReading,
    NeuronError,
    NeuronErrorKind,
    Observation,
    Throttle,
    XidEvent,
)
from corral.health.policy import History, decide
from corral.health.reset import CommandResetter


def test_metrics_per_device_xid_codes_and_throttle_reasons() -> None:
    registry = CollectorRegistry()
    metrics = HealthMetrics(registry)
    seen = Observation(
        devices=(
            DeviceReading(0, pci_bus_id="00000000:18:00.0", ecc_uncorrected=2, temperature_c=51),
            DeviceReading(1, throttles=frozenset({Throttle.POWER_BRAKE})),
        ),
        xids=(XidEvent(48, "0000:18:00"), XidEvent(48, "0000:18:00"), XidEvent(999_999)),
        neuron_errors=(NeuronError(2, NeuronErrorKind.HBM_UNCORRECTABLE, 3),),
    )
    decision, _ = decide("n", seen, History(), 0.0)
    metrics.record(seen, decision)

    value = registry.get_sample_value
    assert value("corral_gpu_device_health", {"device": "gpu0"}) == 0.0
    assert value("corral_gpu_device_health", {"device": "gpu1"}) == 0.5
    assert value("corral_gpu_xid_events_total", {"code": "48"}) == 2.0
    assert value("corral_gpu_xid_events_total", {"code": "other"}) == 1.0
    assert value("corral_gpu_throttle_active", {"device": "gpu1", "reason": "power_brake"}) == 1.0
    assert value("corral_gpu_throttle_active", {"device": "gpu1", "reason": "hw_thermal"}) == 0.0
    assert value("corral_gpu_ecc_uncorrected_errors", {"device": "gpu0"}) == 2.0
    assert value("corral_gpu_temperature_celsius", {"device": "gpu0"}) == 51.0
    assert value("corral_neuron_hardware_errors_total", {"kind": "hbm_uncorrectable"}) == 3.0
    assert value("corral_gpu_node_action_severity") == 6.0  # drain-replace (the Neuron error)


def test_two_registries_do_not_collide() -> None:
    HealthMetrics(CollectorRegistry())
    HealthMetrics(CollectorRegistry())


async def test_reset_runs_the_gpu_reset_per_device() -> None:
    ok = [sys.executable, "-c", "import sys; sys.exit(0 if '{gpu}' in '013' else 1)"]
    boom = [sys.executable, "-c", "raise SystemExit(3)"]
    await CommandResetter("n", gpu_reset=ok, reboot=boom).reset("n", (0, 1, 3))


async def test_a_failed_gpu_reset_falls_back_to_a_reboot_and_reports_its_failure() -> None:
    fail = [sys.executable, "-c", "raise SystemExit(1)"]
    resetter = CommandResetter("n", gpu_reset=fail, reboot=fail)
    with pytest.raises(TemporaryError, match=r"failed \(1\)"):
        await resetter.reset("n", (2,))


async def test_an_agent_only_resets_its_own_node() -> None:
    with pytest.raises(PermanentError, match="cannot reset 'other'"):
        await CommandResetter("n").reset("other", ())

"""Prometheus metrics for GPU health, created on a registry the caller passes in (no globals)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

from corral.health.observations import Observation, Throttle
from corral.health.policy import Decision, Verdict, device_name, verdict_of

_HEALTH = {Verdict.HEALTHY: 1.0, Verdict.DEGRADED: 0.5, Verdict.FAULTY: 0.0}


class HealthMetrics:
    """Per-device health, Xid counts by code, throttle reasons and remediation outcomes.

    Labels stay low-cardinality: ``device`` is an index name (gpu0..gpu15, neuron0..),
    ``code`` an Xid number (never more than a few hundred), ``reason``/``action`` fixed sets.
    A Prometheus scrape adds the node through its target labels.
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self.device_health = Gauge(
            "corral_gpu_device_health",
            "1 healthy, 0.5 degraded, 0 faulty, per accelerator device.",
            ["device"],
            registry=registry,
        )
        self.node_action = Gauge(
            "corral_gpu_node_action_severity",
            "Severity of the action the policy wants for this node (0 none .. 5 drain-replace).",
            registry=registry,
        )
        self.xids = Counter(
            "corral_gpu_xid_events",
            "Xid errors reported by the driver.",
            ["code"],
            registry=registry,
        )
        self.throttle = Gauge(
            "corral_gpu_throttle_active",
            "1 while a hardware clock-event (throttle) reason is active.",
            ["device", "reason"],
            registry=registry,
        )
        self.ecc_uncorrected = Gauge(
            "corral_gpu_ecc_uncorrected_errors",
            "Volatile uncorrectable ECC errors.",
            ["device"],
            registry=registry,
        )
        self.temperature = Gauge(
            "corral_gpu_temperature_celsius", "GPU temperature.", ["device"], registry=registry
        )
        self.power = Gauge(
            "corral_gpu_power_watts", "GPU power draw.", ["device"], registry=registry
        )
        self.neuron_errors = Counter(
            "corral_neuron_hardware_errors",
            "Neuron uncorrectable hardware errors by kind.",
            ["kind"],
            registry=registry,
        )
        self.remediations = Counter(
            "corral_gpu_remediations",
            "Remediation decisions by action and whether they were carried out.",
            ["action", "outcome"],
            registry=registry,
        )
        self.breaker_open = Gauge(
            "corral_gpu_remediation_breaker_open",
            "1 while the remediation circuit breaker is open (needs a human reset).",
            registry=registry,
        )

    def record(self, seen: Observation, decision: Decision) -> None:
        """Update the gauges and counters from one probe round."""
        self.node_action.set(decision.action.severity)
        for d in seen.devices:
            name = device_name(d.index)
            self.device_health.labels(name).set(_HEALTH[verdict_of(decision.for_device(name))])
            for reason in Throttle:
                self.throttle.labels(name, reason.value).set(1.0 if reason in d.throttles else 0.0)
            if d.ecc_uncorrected is not None:
                self.ecc_uncorrected.labels(name).set(d.ecc_uncorrected)
            if d.temperature_c is not None:
                self.temperature.labels(name).set(d.temperature_c)
            if d.power_w is not None:
                self.power.labels(name).set(d.power_w)
        for x in seen.xids:
            self.xids.labels(str(x.code) if 0 <= x.code < 1000 else "other").inc()
        for e in seen.neuron_errors:
            self.neuron_errors.labels(e.kind.value).inc(e.count)

    def record_remediation(self, action: str, outcome: str) -> None:
        self.remediations.labels(action, outcome).inc()

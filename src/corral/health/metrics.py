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
        def gauge(name: str, text: str, *labels: str) -> Gauge:
            return Gauge(name, text, labels, registry=registry)

        def counter(name: str, text: str, *labels: str) -> Counter:
            return Counter(name, text, labels, registry=registry)

        self.device_health = gauge(
            "corral_gpu_device_health", "1 healthy, 0.5 degraded, 0 faulty, per device.", "device"
        )
        self.node_action = gauge(
            "corral_gpu_node_action_severity",
            "Severity of the action the policy wants for this node (0 none .. 6 drain-replace; "
            "4 drain: EKS node auto repair repairs).",
        )
        self.xids = counter("corral_gpu_xid_events", "Xid errors reported by the driver.", "code")
        self.throttle = gauge(
            "corral_gpu_throttle_active",
            "1 while a hardware clock-event (throttle) reason is active.",
            "device",
            "reason",
        )
        self.ecc_uncorrected = gauge(
            "corral_gpu_ecc_uncorrected_errors", "Volatile uncorrectable ECC errors.", "device"
        )
        self.temperature = gauge("corral_gpu_temperature_celsius", "GPU temperature.", "device")
        self.power = gauge("corral_gpu_power_watts", "GPU power draw.", "device")
        self.neuron_errors = counter(
            "corral_neuron_hardware_errors", "Neuron uncorrectable hardware errors.", "kind"
        )
        self.remediations = counter(
            "corral_gpu_remediations",
            "Remediation decisions by action and whether they were carried out or held.",
            "action",
            "outcome",
        )
        self.breaker_open = gauge(
            "corral_gpu_remediation_breaker_open",
            "1 while the remediation circuit breaker is open (needs a human reset).",
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

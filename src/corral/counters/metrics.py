"""Metrics of the shared counters: whether limits are enforced across gateways right now."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Gauge

from corral.counters.failopen import CountersState, FailOpenCounters


class CountersMetrics:
    """Degraded state and dropped settlements of fail-open (Redis-backed) counters."""

    def __init__(
        self, registry: CollectorRegistry, counters: FailOpenCounters | None = None
    ) -> None:
        degraded = Gauge(
            "corral_counters_degraded",
            "1 while the shared counters (Redis) are unreachable and limits apply per process.",
            registry=registry,
        )
        dropped = Gauge(
            "corral_counters_dropped_settlements",
            "Settlements dropped during a Redis outage (their reservations expire and reconcile).",
            registry=registry,
        )
        if counters is not None:
            degraded.set_function(lambda: float(counters.state == CountersState.DEGRADED))
            dropped.set_function(lambda: float(counters.dropped_settlements))

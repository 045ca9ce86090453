"""Metrics of the shared counters: whether limits are enforced across gateways right now, what
the Redis connection pool is doing, and the 503s the counters caused."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Gauge
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from corral.counters.failopen import FailOpenCounters
from corral.counters.outage import CountersState
from corral.counters.pool import PoolStats


class CountersMetrics:
    """Degraded state, transitions, refusals and dropped settlements of fail-open (Redis-backed)
    counters, and their connection pool."""

    def __init__(
        self,
        registry: CollectorRegistry,
        counters: FailOpenCounters | None = None,
        pool: PoolStats | None = None,
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
        registry.register(_CountersCollector(counters, pool))


class _CountersCollector(Collector):
    """Transitions, refusals and pool figures, read at scrape time (zeros when not in use)."""

    def __init__(self, counters: FailOpenCounters | None, pool: PoolStats | None) -> None:
        self._counters = counters
        self._pool = pool if pool is not None else PoolStats(size=0)

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        transitions = CounterMetricFamily(
            "corral_counters_transitions",
            "Times the counters went to a state: degraded (Redis declared down after repeated "
            "failures) or shared (Redis back).",
            labels=["state"],
        )
        refusals = CounterMetricFamily(
            "corral_counters_refusals",
            "Requests answered 503 by the counters: busy (no Redis connection free in time), "
            "failing (a budgeted request whose Redis call failed), outage_budget (a budget "
            "while Redis is down).",
            labels=["cause"],
        )
        counters = self._counters
        for state in CountersState:
            moved = counters.transitions[state] if counters is not None else 0
            transitions.add_metric([state.value], moved)
        for cause in ("busy", "failing", "outage_budget"):
            refusals.add_metric([cause], counters.refusals[cause] if counters is not None else 0)
        yield from (transitions, refusals, *self._pool_families())

    def _pool_families(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        pool = self._pool
        yield GaugeMetricFamily(
            "corral_counters_pool_size", "Connections to Redis this process may open.", pool.size
        )
        yield GaugeMetricFamily(
            "corral_counters_pool_in_use", "Connections to Redis in use now.", pool.in_use
        )
        yield GaugeMetricFamily(
            "corral_counters_pool_waiting",
            "Calls waiting to go to Redis now (back-pressure when it stays above 0).",
            pool.waiting,
        )
        yield CounterMetricFamily(
            "corral_counters_pool_acquisitions", "Redis connections handed out.", pool.acquired
        )
        yield CounterMetricFamily(
            "corral_counters_redis_calls",
            "Admission and settlement script calls sent to Redis.",
            pool.calls,
        )
        yield CounterMetricFamily(
            "corral_counters_redis_round_trips",
            "Pipelines those calls went in (fewer than calls when a burst shares round trips).",
            pool.round_trips,
        )
        yield CounterMetricFamily(
            "corral_counters_pool_wait_seconds",
            "Total time calls waited to go to Redis: queued behind busy connections, or for "
            "one to connect (divide by redis_calls: the mean).",
            pool.wait_seconds,
        )

    def describe(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        return iter(())

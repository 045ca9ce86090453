"""`corral top`'s arithmetic: /metrics text → snapshots → rates, percentiles, GPU health."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from rich.console import Console

from corral.cli.top import render
from corral.engines.local.metrics import SchedulerCollector
from corral.engines.local.stats import SchedulerLoad, SchedulerStats
from corral.gateway.metering import UsageEvent
from corral.gateway.metrics import GatewayMetrics
from corral.health.metrics import HealthMetrics
from corral.observability.snapshot import (
    UNROUTED,
    Histogram,
    combine,
    frame,
    parse_metrics,
)
from support.usage import usage_event


def _event(model: str, *, ttft: float, status: int = 200, outcome: str = "ok") -> UsageEvent:
    return usage_event(
        request_id="r",
        time=0.0,
        team_id=None,
        model=model,
        endpoint="http://engine",
        status=status,
        prompt_tokens=10,
        completion_tokens=20,
        latency=ttft * 2,
        time_to_first_token=ttft,
        outcome=outcome,
    )


def _text(registry: CollectorRegistry) -> str:
    return generate_latest(registry).decode()


def test_histogram_quantile_interpolates_like_promql() -> None:
    h = Histogram(((0.1, 50.0), (0.5, 90.0), (1.0, 100.0), (float("inf"), 100.0)))
    assert h.quantile(0.5) == pytest.approx(0.1)
    assert h.quantile(0.25) == pytest.approx(0.05)
    assert h.quantile(0.7) == pytest.approx(0.3)
    assert h.quantile(0.95) == pytest.approx(0.75)
    assert Histogram().quantile(0.5) is None


def test_a_quantile_in_the_inf_bucket_is_the_highest_finite_bound() -> None:
    h = Histogram(((1.0, 1.0), (2.0, 1.0), (float("inf"), 10.0)))
    assert h.quantile(0.99) == 2.0


def test_histogram_minus_and_counter_resets() -> None:
    earlier = Histogram(((1.0, 5.0), (float("inf"), 6.0)))
    later = Histogram(((1.0, 7.0), (float("inf"), 10.0)))
    assert later.minus(earlier).buckets == ((1.0, 2.0), (float("inf"), 4.0))
    restarted = Histogram(((1.0, 1.0), (float("inf"), 1.0)))
    assert restarted.minus(later) == restarted


def test_rates_and_percentiles_between_two_scrapes() -> None:
    registry = CollectorRegistry()
    metrics = GatewayMetrics(registry)
    metrics.record(_event("a", ttft=0.02))
    before = parse_metrics(_text(registry), at=100.0)
    for _ in range(9):
        metrics.record(_event("a", ttft=0.2))
    metrics.record(_event("a", ttft=3.0, status=502, outcome="upstream_error"))
    metrics.record(_event("b", ttft=0.04))
    metrics.requests.labels(UNROUTED, "-", "4xx").inc()
    metrics.in_flight.inc(3)
    after = parse_metrics(_text(registry), at=102.0)
    shown = frame(before, after)
    assert [row.model for row in shown.rows] == ["a", "b", UNROUTED]
    a, b, unrouted = shown.rows
    assert a.requests == 11
    assert a.requests_per_s == pytest.approx(5.0)
    assert a.errors_per_s == pytest.approx(0.5)
    assert a.error_ratio == pytest.approx(1 / 11)
    assert a.tokens_in_per_s == pytest.approx(50.0)
    assert a.tokens_out_per_s == pytest.approx(100.0)
    assert a.ttft_recent
    assert a.ttft_p50 is not None
    assert 0.15 < a.ttft_p50 <= 0.25, "the 0.02 s request is outside the window"
    assert a.ttft_p99 is not None
    assert 2.0 < a.ttft_p99 <= 5.0
    assert b.requests_per_s == pytest.approx(0.5)
    assert unrouted.requests == 1
    assert unrouted.ttft_p50 is None
    assert shown.in_flight == 3
    assert shown.interval == pytest.approx(2.0)


def test_a_quiet_window_shows_percentiles_since_start() -> None:
    registry = CollectorRegistry()
    GatewayMetrics(registry).record(_event("a", ttft=0.02))
    snapshot = parse_metrics(_text(registry), at=1.0)
    [row] = frame(snapshot, snapshot).rows
    assert row.requests_per_s == 0
    assert not row.ttft_recent
    assert row.ttft_p50 is not None
    assert row.ttft_p50 <= 0.025


def test_gateways_add_up_and_health_agents_list_their_devices() -> None:
    gateways = []
    for _ in range(2):
        registry = CollectorRegistry()
        GatewayMetrics(registry).record(_event("a", ttft=0.1))
        gateways.append(parse_metrics(_text(registry), at=0.0, source="gw"))
    registry = CollectorRegistry()
    health = HealthMetrics(registry)
    health.device_health.labels("gpu0").set(1.0)
    health.device_health.labels("gpu1").set(0.0)
    health.xids.labels("79").inc()
    health.breaker_open.set(1.0)
    agent = parse_metrics(_text(registry), at=0.0, source="node-a:9400")
    combined = combine([*gateways, agent], at=5.0)
    assert combined.models["a"].requests == 2
    assert combined.models["a"].ttft.count == 2
    assert [(d.source, d.device, d.health) for d in combined.devices] == [
        ("node-a:9400", "gpu0", 1.0),
        ("node-a:9400", "gpu1", 0.0),
    ]
    assert combined.xids == {"79": 1.0}
    assert combined.breaker_open


def test_render_shows_models_latency_and_gpu_health() -> None:
    registry = CollectorRegistry()
    metrics = GatewayMetrics(registry)
    before = parse_metrics(_text(registry), at=0.0)
    for _ in range(4):
        metrics.record(_event("llama-3-8b", ttft=0.3))
    health = HealthMetrics(registry)
    health.device_health.labels("gpu0").set(0.0)
    health.breaker_open.set(1.0)
    after = parse_metrics(_text(registry), at=2.0, source="node-b")
    console = Console(record=True, width=140)
    console.print(render(frame(before, after), ["http://x/metrics"]))
    text = console.export_text()
    assert "llama-3-8b" in text
    assert "2.0" in text  # requests/s
    assert "ms" in text  # TTFT
    assert "faulty" in text
    assert "breaker OPEN" in text


def test_render_without_traffic_or_gpus_says_so() -> None:
    console = Console(record=True, width=140)
    console.print(render(frame(None, parse_metrics("", at=0.0)), ["http://x/metrics"]))
    text = console.export_text()
    assert "no requests yet" in text
    assert "no health agent metrics" in text


class _BusyScheduler:
    def __init__(self, waiting: int) -> None:
        self.stats = SchedulerStats()
        self.waiting = waiting

    def load(self) -> SchedulerLoad:
        return SchedulerLoad(waiting=self.waiting, decoding=4, slots_used=4, slots=4)


def test_local_engine_pages_add_their_queue_depth_to_the_model_row() -> None:
    gateway = CollectorRegistry()
    metrics = GatewayMetrics(gateway)
    metrics.record(_event("small", ttft=0.1))
    metrics.record(_event("big", ttft=0.1))
    engines = []
    for waiting in (3, 2):
        registry = CollectorRegistry()
        registry.register(SchedulerCollector("small", _BusyScheduler(waiting)))
        engines.append(parse_metrics(_text(registry), at=0.0, source="engine"))
    combined = combine([parse_metrics(_text(gateway), at=0.0), *engines], at=1.0)
    rows = {row.model: row for row in frame(None, combined).rows}
    assert rows["small"].engine_queue == 5
    assert rows["big"].engine_queue is None  # no engine page for it: unknown, not zero
    console = Console(record=True, width=160)
    console.print(render(frame(None, combined), ["http://x/metrics"]))
    text = console.export_text()
    assert "engine queue" in text
    small = next(line for line in text.splitlines() if "small" in line)
    assert small.rstrip(" │").endswith("5")

"""Reads a Corral /metrics page into a snapshot, and two snapshots into rates and percentiles."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families

UNROUTED = "-"  # the model label of requests refused before a model was known


@dataclass(frozen=True, slots=True)
class Histogram:
    """Cumulative bucket counts, by upper bound (the last one +Inf)."""

    buckets: tuple[tuple[float, float], ...] = ()

    @property
    def count(self) -> float:
        return self.buckets[-1][1] if self.buckets else 0.0

    def minus(self, earlier: Histogram) -> Histogram:
        """The observations made since ``earlier`` (a counter reset counts from zero)."""
        before = dict(earlier.buckets)
        if any(count < before.get(le, 0.0) for le, count in self.buckets):
            return self
        return Histogram(tuple((le, count - before.get(le, 0.0)) for le, count in self.buckets))

    def quantile(self, q: float) -> float | None:
        """The q-quantile, interpolated within its bucket as PromQL's histogram_quantile does."""
        total = self.count
        if total <= 0:
            return None
        rank = q * total
        lower_bound, lower_count = 0.0, 0.0
        for le, count in self.buckets:
            if count >= rank:
                if math.isinf(le):
                    return lower_bound
                if count == lower_count:
                    return le
                return lower_bound + (le - lower_bound) * (rank - lower_count) / (
                    count - lower_count
                )
            lower_bound, lower_count = le, count
        return lower_bound


@dataclass(frozen=True, slots=True)
class ModelCounters:
    """One model's counters at one moment."""

    requests: float = 0.0
    server_errors: float = 0.0
    errors: float = 0.0
    tokens_in: float = 0.0
    tokens_out: float = 0.0
    ttft: Histogram = field(default_factory=Histogram)
    engine_queue: float | None = None  # local engine sequences waiting; None: no engine page read


@dataclass(frozen=True, slots=True)
class DeviceHealth:
    """One accelerator as a health agent reports it: 1 healthy, 0.5 degraded, 0 faulty."""

    source: str
    device: str
    health: float


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything ``corral top`` shows, read from one or more /metrics pages at time ``at``."""

    at: float
    models: Mapping[str, ModelCounters]
    in_flight: float = 0.0
    devices: tuple[DeviceHealth, ...] = ()
    xids: Mapping[str, float] = field(default_factory=dict)
    breaker_open: bool = False


def parse_metrics(text: str, *, at: float, source: str = "") -> Snapshot:
    """A snapshot of one /metrics page (Prometheus text format)."""
    found = _Found()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found.add(sample.name, sample.labels, sample.value, source)
    return found.snapshot(at)


def combine(snapshots: Iterable[Snapshot], *, at: float) -> Snapshot:
    """Several processes' snapshots as one: counters add up, devices are listed together."""
    parts = list(snapshots)
    names = sorted({name for part in parts for name in part.models})
    models = {name: _sum([p.models[name] for p in parts if name in p.models]) for name in names}
    xids: dict[str, float] = {}
    for part in parts:
        for code, count in part.xids.items():
            xids[code] = xids.get(code, 0.0) + count
    return Snapshot(
        at=at,
        models=models,
        in_flight=sum(p.in_flight for p in parts),
        devices=tuple(d for p in parts for d in p.devices),
        xids=xids,
        breaker_open=any(p.breaker_open for p in parts),
    )


@dataclass(frozen=True, slots=True)
class ModelRow:
    """One model's line in the view."""

    model: str
    requests: float
    requests_per_s: float
    errors_per_s: float
    error_ratio: float | None
    tokens_in_per_s: float
    tokens_out_per_s: float
    ttft_p50: float | None
    ttft_p99: float | None
    ttft_recent: bool
    engine_queue: float | None = None


@dataclass(frozen=True, slots=True)
class Frame:
    """What one refresh of the view shows."""

    rows: tuple[ModelRow, ...]
    in_flight: float
    interval: float
    devices: tuple[DeviceHealth, ...]
    xids: Mapping[str, float]
    breaker_open: bool


def frame(previous: Snapshot | None, current: Snapshot) -> Frame:
    """Rates over the time between the snapshots; TTFT percentiles over that window when it
    saw requests, else since the process started (``ttft_recent`` says which)."""
    interval = current.at - previous.at if previous is not None else 0.0
    rows = []
    for name, now in current.models.items():
        before = previous.models.get(name, ModelCounters()) if previous else ModelCounters()
        rows.append(_row(name, before, now, interval))
    rows.sort(key=lambda r: (r.model == UNROUTED, -r.requests_per_s, r.model))
    return Frame(
        rows=tuple(rows),
        in_flight=current.in_flight,
        interval=interval,
        devices=current.devices,
        xids=current.xids,
        breaker_open=current.breaker_open,
    )


def _row(name: str, before: ModelCounters, now: ModelCounters, interval: float) -> ModelRow:
    def rate(a: float, b: float) -> float:
        return max(b - a, 0.0) / interval if interval > 0 else 0.0

    window = now.ttft.minus(before.ttft) if interval > 0 else Histogram()
    recent = window.count > 0
    ttft = window if recent else now.ttft
    return ModelRow(
        model=name,
        requests=now.requests,
        requests_per_s=rate(before.requests, now.requests),
        errors_per_s=rate(before.errors, now.errors),
        error_ratio=now.server_errors / now.requests if now.requests else None,
        tokens_in_per_s=rate(before.tokens_in, now.tokens_in),
        tokens_out_per_s=rate(before.tokens_out, now.tokens_out),
        ttft_p50=ttft.quantile(0.5),
        ttft_p99=ttft.quantile(0.99),
        ttft_recent=recent,
        engine_queue=now.engine_queue,
    )


def _sum(parts: list[ModelCounters]) -> ModelCounters:
    buckets: dict[float, float] = {}
    for part in parts:
        for le, count in part.ttft.buckets:
            buckets[le] = buckets.get(le, 0.0) + count
    queues = [p.engine_queue for p in parts if p.engine_queue is not None]
    return ModelCounters(
        requests=sum(p.requests for p in parts),
        server_errors=sum(p.server_errors for p in parts),
        errors=sum(p.errors for p in parts),
        tokens_in=sum(p.tokens_in for p in parts),
        tokens_out=sum(p.tokens_out for p in parts),
        ttft=Histogram(tuple(sorted(buckets.items()))),
        engine_queue=sum(queues) if queues else None,
    )


@dataclass
class _Found:
    """Accumulates samples of the metrics the view uses."""

    counters: dict[str, dict[str, float]] = field(default_factory=dict)
    buckets: dict[str, dict[float, float]] = field(default_factory=dict)
    in_flight: float = 0.0
    devices: list[DeviceHealth] = field(default_factory=list)
    xids: dict[str, float] = field(default_factory=dict)
    breaker_open: bool = False

    def add(self, name: str, labels: Mapping[str, str], value: float, source: str) -> None:
        model = labels.get("model", UNROUTED)
        if name == "corral_requests_total":
            self._count(model, "requests", value)
            if labels.get("status_class") == "5xx":
                self._count(model, "server_errors", value)
        elif name == "corral_request_errors_total":
            self._count(model, "errors", value)
        elif name == "corral_tokens_total":
            direction = "tokens_in" if labels.get("direction") == "input" else "tokens_out"
            self._count(model, direction, value)
        elif name == "corral_engine_queue_depth":
            self._count(model, "engine_queue", value)
        elif name == "corral_time_to_first_token_seconds_bucket":
            le = float(labels["le"])
            per_model = self.buckets.setdefault(model, {})
            per_model[le] = per_model.get(le, 0.0) + value
        else:
            self._add_other(name, labels, value, source)

    def _add_other(self, name: str, labels: Mapping[str, str], value: float, source: str) -> None:
        if name == "corral_requests_in_flight":
            self.in_flight += value
        elif name == "corral_gpu_device_health":
            self.devices.append(DeviceHealth(source, labels.get("device", "?"), value))
        elif name == "corral_gpu_xid_events_total":
            code = labels.get("code", "?")
            self.xids[code] = self.xids.get(code, 0.0) + value
        elif name == "corral_gpu_remediation_breaker_open":
            self.breaker_open = self.breaker_open or value >= 1

    def _count(self, model: str, field_name: str, value: float) -> None:
        per_model = self.counters.setdefault(model, {})
        per_model[field_name] = per_model.get(field_name, 0.0) + value

    def snapshot(self, at: float) -> Snapshot:
        names = sorted(set(self.counters) | set(self.buckets))
        models = {
            name: ModelCounters(
                **self.counters.get(name, {}),
                ttft=Histogram(tuple(sorted(self.buckets.get(name, {}).items()))),
            )
            for name in names
        }
        return Snapshot(
            at=at,
            models=models,
            in_flight=self.in_flight,
            devices=tuple(sorted(self.devices, key=lambda d: (d.source, d.device))),
            xids=dict(self.xids),
            breaker_open=self.breaker_open,
        )

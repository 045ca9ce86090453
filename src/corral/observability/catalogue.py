"""Every metric Corral exports, read off the metric sets themselves on a fresh registry."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry
from prometheus_client.core import Metric
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.registry import Collector

from corral.catalog import Endpoint, ModelSpec, OpenAIEngine
from corral.clock import SystemClock
from corral.counters.metrics import CountersMetrics
from corral.engines.local.embedding_service import EmbeddingStats
from corral.engines.local.metrics import EmbeddingCollector, SchedulerCollector
from corral.engines.local.stats import SchedulerLoad, SchedulerStats
from corral.gateway.endpoints import EndpointCollector
from corral.gateway.ledger import LedgerMetrics
from corral.gateway.metrics import GatewayMetrics
from corral.gateway.routes import LiveEndpoint, ModelRoute, RouteTable
from corral.health.metrics import HealthMetrics
from corral.observability.external import TARGET_LABELS
from corral.observability.labels import forbidden_reason

_PLACEHOLDER = "x"
_SERIES_LABELS = {"le", "quantile"}  # labels of a histogram's or summary's series, not the metric


def _endpoints(registry: CollectorRegistry) -> None:
    """Endpoint state is read at scrape time from the route table: one sample endpoint here."""
    url = "http://replica.example:8000/v1"
    spec = ModelSpec(name="model", engine=OpenAIEngine(endpoints=[Endpoint(url=url)]))
    route = ModelRoute(spec, [LiveEndpoint(url, latency_ewma=0.1)])
    registry.register(EndpointCollector(RouteTable([route]), SystemClock()))


class _IdleScheduler:
    """A scheduler with nothing to do, for the engine metrics' one sample series."""

    def __init__(self) -> None:
        self.stats = SchedulerStats()

    def load(self) -> SchedulerLoad:
        return SchedulerLoad(waiting=0, decoding=0, slots_used=0, slots=1)


class _IdleEmbeddings:
    """An embedding service with nothing to do."""

    def __init__(self) -> None:
        self.stats = EmbeddingStats()

    def queue_depth(self) -> int:
        return 0


class _EmbeddingOnly(Collector):
    """The embedding engine's metrics that the chat engine does not also export (listed once)."""

    def __init__(self, shared: Collector) -> None:
        self._shared = {family.name for family in shared.collect()}
        self._embeddings = EmbeddingCollector("model", _IdleEmbeddings())

    def collect(self) -> Iterator[Metric]:
        return (m for m in self._embeddings.collect() if m.name not in self._shared)


def _engine(registry: CollectorRegistry) -> None:
    """Engine metrics are read at scrape time from the scheduler or embedding service: one
    idle model of each here."""
    chat = SchedulerCollector("model", _IdleScheduler())
    registry.register(chat)
    registry.register(_EmbeddingOnly(chat))


@dataclass(frozen=True, slots=True)
class MetricSet:
    """One component's metrics: a class whose constructor registers them on a registry."""

    component: str
    exposed_by: str
    build: Callable[[CollectorRegistry], object]


METRIC_SETS: tuple[MetricSet, ...] = (
    MetricSet("gateway", "every Corral process (`corral up`, gateway pods)", GatewayMetrics),
    MetricSet(
        "ledger", "every Corral process that writes usage to a store (the ledger)", LedgerMetrics
    ),
    MetricSet("gpu-health", "the GPU health agent on each accelerator node", HealthMetrics),
    MetricSet(
        "counters", "every Corral process whose limits live in Redis (fail-open)", CountersMetrics
    ),
    MetricSet("endpoints", "every Corral process, one series per model endpoint", _endpoints),
    MetricSet(
        "engine",
        "the local CPU engine (`corral.engines.local`), on `/metrics` of its own loopback port "
        "and merged into the gateway's `/metrics`; vLLM's metrics are scraped as vLLM exports "
        "them",
        _engine,
    ),
)


@dataclass(frozen=True, slots=True)
class Series:
    """One time-series name as Prometheus stores it (``_total``, ``_bucket``...) and its labels."""

    name: str
    labels: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class MetricEntry:
    """One metric family in the catalogue."""

    name: str
    type: str
    help: str
    labels: tuple[str, ...]
    component: str
    series: tuple[Series, ...]
    buckets: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Catalogue:
    """All metric families, with lookups by the series names PromQL uses."""

    entries: tuple[MetricEntry, ...]

    def __iter__(self) -> Iterator[MetricEntry]:
        return iter(self.entries)

    def series(self) -> dict[str, Series]:
        """Every exported series name → its series (names are unique across components)."""
        return {s.name: s for entry in self.entries for s in entry.series}

    def entry_of(self, series_name: str) -> MetricEntry | None:
        """The family a series belongs to."""
        for entry in self.entries:
            if any(s.name == series_name for s in entry.series):
                return entry
        return None

    def violations(self) -> list[str]:
        """Labels that break the forbidden-labels rule or clash with a target label."""
        found = []
        for entry in self.entries:
            for label in entry.labels:
                reason = forbidden_reason(label)
                if reason is None and label in TARGET_LABELS:
                    reason = (
                        "a scrape target label of that name wins, and Prometheus renames the "
                        f"metric's own to exported_{label}; choose another name"
                    )
                if reason is not None:
                    found.append(f"{entry.name} ({entry.component}) has label {label!r}: {reason}")
        return found


class _RecordingRegistry(CollectorRegistry):
    """A registry that remembers the order collectors were registered in."""

    def __init__(self) -> None:
        super().__init__(auto_describe=True)
        self.collectors: list[Collector] = []

    def register(self, collector: Collector) -> None:
        super().register(collector)
        self.collectors.append(collector)


def _label_names(collector: Collector) -> tuple[str, ...]:
    # prometheus_client has no public accessor for a parent metric's label names; without one
    # child per parent a labelled metric exports no samples, so the names are read here.
    if isinstance(collector, MetricWrapperBase):
        return tuple(getattr(collector, "_labelnames", ()))
    return ()


def _family_labels(declared: tuple[str, ...], series: dict[str, set[str]]) -> tuple[str, ...]:
    """The declared labels, or for a custom collector those its samples carry."""
    if declared:
        return declared
    seen = set().union(*series.values()) - _SERIES_LABELS
    return tuple(sorted(seen))


def _entries(metric_set: MetricSet) -> Iterator[MetricEntry]:
    registry = _RecordingRegistry()
    metric_set.build(registry)
    for collector in registry.collectors:
        labels = _label_names(collector)
        if labels and isinstance(collector, MetricWrapperBase):
            # One placeholder child makes a labelled family export every series it has.
            collector.labels(*[_PLACEHOLDER] * len(labels))
        for family in collector.collect():
            series: dict[str, set[str]] = {}
            buckets: list[str] = []
            for sample in family.samples:
                series.setdefault(sample.name, set()).update(sample.labels)
                if sample.name.endswith("_bucket"):
                    buckets.append(sample.labels["le"])
            yield MetricEntry(
                name=family.name,
                type=family.type,
                help=family.documentation,
                labels=_family_labels(labels, series),
                component=metric_set.component,
                series=tuple(Series(name, tuple(sorted(names))) for name, names in series.items()),
                buckets=tuple(buckets),
            )


def build_catalogue(metric_sets: tuple[MetricSet, ...] = METRIC_SETS) -> Catalogue:
    """Build every metric set on a fresh registry of its own and describe what it exports."""
    entries = [entry for metric_set in metric_sets for entry in _entries(metric_set)]
    return Catalogue(tuple(entries))

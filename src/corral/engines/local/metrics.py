"""The local engine's Prometheus metrics, made from the scheduler's plain numbers when scraped."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from corral.engines.local.embedding_service import EmbeddingStats
from corral.engines.local.stats import Durations, SchedulerLoad, SchedulerStats

_LABELS = ["model"]


class ObservedScheduler(Protocol):
    """What the collector reads: the scheduler's totals and its load now."""

    @property
    def stats(self) -> SchedulerStats: ...

    def load(self) -> SchedulerLoad: ...


class ObservedEmbeddings(Protocol):
    """What the collector reads of an embedding service."""

    @property
    def stats(self) -> EmbeddingStats: ...

    def queue_depth(self) -> int: ...


class _ModelCollector(Collector):
    """One model's metrics, made when scraped."""

    def __init__(self, model: str) -> None:
        self._labels = [model]

    def describe(self) -> Iterator[Metric]:
        return iter(())

    def _gauge(self, name: str, documentation: str, value: float) -> Metric:
        family = GaugeMetricFamily(name, documentation, labels=_LABELS)
        family.add_metric(self._labels, value)
        return family

    def _counter(self, name: str, documentation: str, value: float) -> Metric:
        family = CounterMetricFamily(name, documentation, labels=_LABELS)
        family.add_metric(self._labels, value)
        return family


class EmbeddingCollector(_ModelCollector):
    """Queue, batch and throughput of one embedding model, under the engine metric names."""

    def __init__(self, model: str, service: ObservedEmbeddings) -> None:
        super().__init__(model)
        self._service = service

    def collect(self) -> Iterator[Metric]:
        stats = self._service.stats
        yield self._gauge(
            "corral_engine_queue_depth", "Requests waiting.", self._service.queue_depth()
        )
        yield self._gauge("corral_engine_batch_size", "Texts being encoded now.", stats.encoding)
        yield self._counter("corral_engine_prompt_tokens", "Tokens encoded.", stats.tokens)
        yield self._counter(
            "corral_engine_embedded_texts",
            "Texts an embedding engine encoded (inputs, not requests).",
            stats.texts,
        )
        yield self._counter(
            "corral_engine_queue_rejections", "Requests refused: queue full.", stats.rejected
        )


class SchedulerCollector(_ModelCollector):
    """Queue, batch, slot and token metrics of one model's scheduler, labelled by model."""

    def __init__(self, model: str, scheduler: ObservedScheduler) -> None:
        super().__init__(model)
        self._scheduler = scheduler

    def collect(self) -> Iterator[Metric]:
        load, stats = self._scheduler.load(), self._scheduler.stats
        yield self._gauge(
            "corral_engine_queue_depth",
            "Sequences waiting for a decode slot (a request asking for n choices queues n).",
            load.waiting,
        )
        yield self._gauge(
            "corral_engine_batch_size", "Sequences in the running decode batch.", load.decoding
        )
        yield self._gauge(
            "corral_engine_slots_used",
            "Decode slots (per-sequence KV caches) held: the batch plus a prompt being prefilled.",
            load.slots_used,
        )
        yield self._gauge(
            "corral_engine_slot_capacity",
            "Decode slots the engine has (its maximum batch size).",
            load.slots,
        )
        yield self._counter(
            "corral_engine_prompt_tokens", "Prompt tokens prefilled.", stats.prompt_tokens
        )
        yield self._counter(
            "corral_engine_generated_tokens",
            "Tokens generated (sampled), including those that ended a sequence.",
            stats.generated_tokens,
        )
        yield self._counter(
            "corral_engine_queue_rejections",
            "Sequences refused because the queue was full (answered 503 Retry-After).",
            stats.rejected,
        )
        yield self._histogram(
            "corral_engine_queue_time_seconds",
            "Time a sequence waited for a decode slot.",
            stats.queue_time,
        )
        yield self._histogram(
            "corral_engine_prefill_step_seconds",
            "Duration of one prefill forward pass (one prompt chunk).",
            stats.prefill_step,
        )
        yield self._histogram(
            "corral_engine_decode_step_seconds",
            "Duration of one batched decode forward pass (a token for every running sequence).",
            stats.decode_step,
        )

    def _histogram(self, name: str, documentation: str, durations: Durations) -> Metric:
        family = HistogramMetricFamily(name, documentation, labels=_LABELS)
        bounds = [*map(floatToGoString, durations.bounds), "+Inf"]
        cumulative = durations.cumulative()
        family.add_metric(self._labels, list(zip(bounds, cumulative, strict=True)), durations.total)
        return family

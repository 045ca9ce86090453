"""The scheduler's statistics and the Prometheus collector over them (fake decoder, fake clock)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from corral.clock import FakeClock
from corral.engines.local.metrics import SchedulerCollector
from corral.engines.local.scheduler import Scheduler
from corral.engines.local.stats import Durations, SchedulerLoad
from corral.errors import Overloaded
from support.local_engine_fakes import Collector, CountingDecoder, sequence

PREFILL = 1 / 32
DECODE = 1 / 256


class TimedDecoder(CountingDecoder):
    """A counting decoder whose forward passes take fake time (binary fractions, so sums are exact):
    about 31 ms a prefill, 4 ms a decode."""

    def __init__(self, max_batch: int, clock: FakeClock) -> None:
        super().__init__(max_batch)
        self.clock = clock

    def prefill(self, slot: int, tokens: Sequence[int], cached: int) -> np.ndarray:
        self.clock.advance(PREFILL)
        return super().prefill(slot, tokens, cached)

    def decode(self, tokens: Sequence[int], cached: Sequence[int]) -> np.ndarray:
        self.clock.advance(DECODE)
        return super().decode(tokens, cached)


def make(max_batch: int = 2, *, max_queue: int = 8, chunk: int = 256):
    clock = FakeClock()
    decoder = TimedDecoder(max_batch, clock)
    scheduler = Scheduler(
        decoder, eos_ids=frozenset({49}), max_queue=max_queue, prefill_chunk=chunk, clock=clock
    )
    return clock, scheduler


def drain(scheduler: Scheduler) -> None:
    for _ in range(200):
        if not scheduler.step():
            return
    raise AssertionError("the scheduler never went idle")


def test_prompt_and_generated_tokens_are_counted() -> None:
    _, scheduler = make(chunk=2)
    scheduler.submit([sequence([1, 2, 3, 4, 5], Collector(), max_tokens=4)])
    scheduler.submit([sequence([10], Collector(), max_tokens=3)])
    drain(scheduler)
    assert scheduler.stats.prompt_tokens == 6
    assert scheduler.stats.generated_tokens == 7
    assert sum(scheduler.stats.prefill_step.counts) == 4  # chunks 2, 2, 1, then the second prompt


def test_tokens_that_end_a_sequence_count_as_generated() -> None:
    _, scheduler = make()
    out = Collector()
    scheduler.submit([sequence([46], out, max_tokens=10)])  # 47, 48, then end-of-sequence 49
    drain(scheduler)
    final = out.final()
    assert final is not None
    assert scheduler.stats.generated_tokens == final.completion_tokens == 3


def test_step_durations_are_observed_per_forward_pass() -> None:
    _, scheduler = make()
    scheduler.submit([sequence([1], Collector(), max_tokens=4)])
    drain(scheduler)
    stats = scheduler.stats
    assert sum(stats.prefill_step.counts) == 1
    assert stats.prefill_step.total == PREFILL
    assert sum(stats.decode_step.counts) == 3  # the prefill sampled the first token
    assert stats.decode_step.total == 3 * DECODE
    assert stats.decode_step.cumulative()[stats.decode_step.bounds.index(0.005)] == 3


def test_time_in_queue_is_measured_from_submit_to_a_slot() -> None:
    clock, scheduler = make(max_batch=1)
    scheduler.submit([sequence([1], Collector(), max_tokens=3)])
    scheduler.submit([sequence([20], Collector(), max_tokens=2)])
    clock.advance(1.0)  # both wait a second before the loop first steps
    drain(scheduler)
    queue = scheduler.stats.queue_time
    assert sum(queue.counts) == 2
    # The second also waits out the first's prefill and two decode steps.
    assert queue.total == 1.0 + 1.0 + PREFILL + 2 * DECODE


def test_load_reports_queue_batch_and_slots_as_they_change() -> None:
    _, scheduler = make(max_batch=2)
    assert scheduler.load() == SchedulerLoad(waiting=0, decoding=0, slots_used=0, slots=2)
    scheduler.submit([sequence([1], Collector(), max_tokens=9) for _ in range(3)])
    assert scheduler.load() == SchedulerLoad(waiting=3, decoding=0, slots_used=0, slots=2)
    scheduler.step()  # the first is prefilled and joins the batch
    assert scheduler.load() == SchedulerLoad(waiting=2, decoding=1, slots_used=1, slots=2)
    scheduler.step()  # the second is prefilled; the third waits for a slot
    assert scheduler.load() == SchedulerLoad(waiting=1, decoding=2, slots_used=2, slots=2)
    drain(scheduler)
    assert scheduler.load() == SchedulerLoad(waiting=0, decoding=0, slots_used=0, slots=2)


def test_sequences_refused_by_a_full_queue_are_counted() -> None:
    _, scheduler = make(max_queue=2)
    scheduler.submit([sequence([1], Collector())])
    with pytest.raises(Overloaded):
        scheduler.submit([sequence([1], Collector(), index=i) for i in range(2)])
    assert scheduler.stats.rejected == 2


def test_durations_put_a_value_on_a_bound_in_that_bound_s_bucket() -> None:
    durations = Durations((0.1, 1.0))
    for value in (0.05, 0.1, 0.5, 1.0, 7.0):
        durations.observe(value)
    assert durations.counts == [2, 2, 1]
    assert durations.cumulative() == [2, 4, 5]
    assert durations.total == pytest.approx(8.65)


def test_the_collector_exports_the_scheduler_s_numbers_by_model() -> None:
    _, scheduler = make(max_batch=2)
    scheduler.submit([sequence([1, 2], Collector(), max_tokens=30)])
    scheduler.submit([sequence([5], Collector(), max_tokens=30) for _ in range(2)])
    scheduler.step()
    scheduler.step()  # two decode, the third waits
    registry = CollectorRegistry()
    registry.register(SchedulerCollector("tiny", scheduler))

    def value(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, {"model": "tiny", **labels})

    assert value("corral_engine_queue_depth") == 1
    assert value("corral_engine_batch_size") == 2
    assert value("corral_engine_slots_used") == 2
    assert value("corral_engine_slot_capacity") == 2
    assert value("corral_engine_prompt_tokens_total") == 3
    assert value("corral_engine_generated_tokens_total") == scheduler.stats.generated_tokens > 0
    assert value("corral_engine_queue_rejections_total") == 0
    assert value("corral_engine_queue_time_seconds_count") == 2
    assert value("corral_engine_decode_step_seconds_bucket", le="0.005") == value(
        "corral_engine_decode_step_seconds_count"
    )
    assert value("corral_engine_prefill_step_seconds_bucket", le="+Inf") == 2
    assert value("corral_engine_prefill_step_seconds_sum") == 2 * PREFILL

"""The batching scheduler, stepped by hand with a counting fake decoder (no threads, no sleeps)."""

from __future__ import annotations

import pytest

from corral.engines.local.scheduler import Scheduler
from corral.errors import Overloaded
from support.local_engine_fakes import Collector, CountingDecoder, sequence


def make(max_batch: int = 4, *, eos: int = 49, max_queue: int = 8, chunk: int = 256):
    decoder = CountingDecoder(max_batch)
    scheduler = Scheduler(
        decoder, eos_ids=frozenset({eos}), max_queue=max_queue, prefill_chunk=chunk
    )
    return decoder, scheduler


def run(scheduler: Scheduler, limit: int = 100) -> int:
    steps = 0
    while scheduler.step():
        steps += 1
        assert steps < limit
    return steps


def test_max_tokens_is_exact_and_reported() -> None:
    _decoder, scheduler = make()
    out = Collector()
    scheduler.submit([sequence([1, 2, 3], out, max_tokens=5)])
    run(scheduler)
    final = out.final()
    assert final is not None
    assert (final.finish_reason, final.prompt_tokens, final.completion_tokens) == ("length", 3, 5)
    assert out.text() == "efghi"  # tokens 4..8
    assert scheduler.running == 0


def test_end_of_sequence_token_stops_without_text() -> None:
    _, scheduler = make(eos=6)
    out = Collector()
    scheduler.submit([sequence([3], out, max_tokens=10)])
    run(scheduler)
    final = out.final()
    assert final is not None
    assert final.finish_reason == "stop"
    assert final.completion_tokens == 3  # 4, 5, then the end-of-sequence token 6
    assert out.text() == "ef"


def test_stop_sequence_cuts_text_before_it() -> None:
    _, scheduler = make()
    out = Collector()
    scheduler.submit([sequence([0], out, max_tokens=20, stop=("def",))])
    run(scheduler)
    final = out.final()
    assert final is not None
    assert final.finish_reason == "stop"
    assert out.text() == "bc"
    assert final.completion_tokens == 5  # b c d e f: the stop text was generated


def test_a_new_request_joins_a_running_batch() -> None:
    decoder, scheduler = make()
    first, second = Collector(), Collector()
    scheduler.submit([sequence([1], first, max_tokens=10)])
    for _ in range(3):
        scheduler.step()
    scheduler.submit([sequence([20], second, max_tokens=3)])
    run(scheduler)
    assert 2 in decoder.decode_sizes()  # both were decoded in one step
    assert first.text() == "cdefghijkl"
    assert second.text() == "vwx"


def test_finished_sequence_frees_its_slot_and_the_gap_is_closed() -> None:
    decoder, scheduler = make()
    outs = [Collector() for _ in range(3)]
    budgets = [8, 4, 8]
    for out, start, budget in zip(outs, [0, 10, 30], budgets, strict=True):
        scheduler.submit([sequence([start], out, max_tokens=budget)])
    run(scheduler)
    assert any(call[:3] == ("move", 2, 1) for call in decoder.calls)
    # The moved sequence kept its own cache: its text continues from its own prompt.
    assert outs[2].text() == "fghijklm"  # tokens 31..38
    assert outs[0].text() == "bcdefghi"


def test_cancel_frees_the_slot_for_the_next_waiting_request() -> None:
    _, scheduler = make(max_batch=1)
    first, second = Collector(), Collector()
    long = sequence([1], first, max_tokens=1000)
    scheduler.submit([long])
    scheduler.submit([sequence([5], second, max_tokens=2)])
    scheduler.step()
    assert (scheduler.running, scheduler.waiting) == (1, 1)
    scheduler.cancel([long])
    scheduler.step()
    assert second.deltas  # admitted and prefilled on the very next step
    run(scheduler)
    assert second.text() == "gh"
    assert first.final() is None


def test_cancelled_waiting_request_is_never_run() -> None:
    decoder, scheduler = make(max_batch=1)
    busy, gone = Collector(), Collector()
    scheduler.submit([sequence([1], busy, max_tokens=2)])
    queued = sequence([7], gone, max_tokens=2)
    scheduler.submit([queued])
    scheduler.cancel([queued])
    run(scheduler)
    assert gone.deltas == []
    assert all(c[2] != [7] for c in decoder.calls if c[0] == "prefill")


def test_full_queue_refuses_with_retry_after() -> None:
    _, scheduler = make(max_batch=1, max_queue=2)
    sink = Collector()
    scheduler.submit([sequence([1], sink), sequence([2], sink)])
    with pytest.raises(Overloaded) as info:
        scheduler.submit([sequence([3], sink)])
    assert info.value.status == 503
    assert info.value.retry_after is not None


def test_long_prompts_are_prefilled_in_chunks_between_decode_steps() -> None:
    decoder, scheduler = make(chunk=4)
    early, late = Collector(), Collector()
    scheduler.submit([sequence([1], early, max_tokens=6)])
    scheduler.step()
    scheduler.submit([sequence(list(range(10)), late, max_tokens=2)])
    run(scheduler)
    prefills = [(c[2], c[3]) for c in decoder.calls if c[0] == "prefill"][1:]
    assert prefills == [([0, 1, 2, 3], 0), ([4, 5, 6, 7], 4), ([8, 9], 8)]
    assert late.text() == "kl"  # 10, 11: the chunks joined up in one cache
    assert len(early.text()) == 6


def test_n_sequences_of_one_request_are_reported_by_index() -> None:
    _, scheduler = make()
    out = Collector()
    scheduler.submit([sequence([1], out, max_tokens=2, index=i) for i in range(3)])
    run(scheduler)
    assert [out.text(i) for i in range(3)] == ["cd", "cd", "cd"]


def test_failure_ends_every_sequence_with_an_error() -> None:
    _, scheduler = make(max_batch=1)
    out = Collector()
    scheduler.submit([sequence([1], out, max_tokens=5), sequence([2], out, max_tokens=5, index=1)])
    scheduler.step()
    scheduler.fail_all("boom")
    assert {d.finish_reason for d in out.deltas if d.finish_reason} == {"error"}
    assert (scheduler.running, scheduler.waiting) == (0, 0)


def test_cancelled_waiting_requests_stop_counting_against_the_queue() -> None:
    _, scheduler = make(max_batch=1, max_queue=2)
    sink = Collector()
    scheduler.submit([sequence([1], sink, max_tokens=50)])
    scheduler.step()
    queued = [sequence([2], sink), sequence([3], sink)]
    scheduler.submit(queued)
    scheduler.cancel(queued[1:])
    scheduler.step()
    scheduler.submit([sequence([4], sink)])  # room again: the cancelled one left the queue
    assert scheduler.waiting == 2

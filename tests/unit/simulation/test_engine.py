"""The replica engine, step by step, against hand-computed times."""

from __future__ import annotations

import pytest

from corral.simulation.engine import ReplicaEngine, SimRequest
from support.simulation import model


def _drain(engine: ReplicaEngine, start: float = 0.0) -> list[float]:
    """Run steps back to back; the step end times."""
    now, ends = start, []
    while engine.has_work:
        result = engine.step(now)
        now += result.duration_s
        engine.end_step(result.finished)
        ends.append(now)
    return ends


def test_chunked_prefill_then_one_token_per_decode_step() -> None:
    engine = ReplicaEngine(model())
    request = SimRequest(0, 0.0, prompt_tokens=3000, output_tokens=3)
    engine.submit(request)
    ends = _drain(engine)
    # 2048 then 952 prompt tokens at 1,000/s: the first token at 3.0 s (prompt / prefill rate).
    # Two decode steps of 10 ms + 1 µs × context (3001, then 3002 tokens).
    assert ends == pytest.approx([2.048, 3.0, 3.013001, 3.026003])
    assert request.first_token_s == pytest.approx(3.0)
    assert request.finished_s == pytest.approx(3.026003)
    assert engine.kv_used == 0
    assert engine.tokens_in_flight == 0


def test_a_single_token_answer_finishes_with_its_prefill() -> None:
    engine = ReplicaEngine(model())
    request = SimRequest(0, 0.0, prompt_tokens=500, output_tokens=1)
    engine.submit(request)
    assert _drain(engine) == pytest.approx([0.5])
    assert request.finished_s == request.first_token_s == pytest.approx(0.5)


def test_kv_capacity_holds_the_second_request_back_until_the_first_finishes() -> None:
    engine = ReplicaEngine(model(kv_capacity_tokens=5000))
    first = SimRequest(0, 0.0, prompt_tokens=3000, output_tokens=2)
    second = SimRequest(1, 0.0, prompt_tokens=3000, output_tokens=2)
    engine.submit(first)
    engine.submit(second)
    _drain(engine)
    assert first.finished_s is not None
    assert second.first_token_s is not None
    # The second needs 3,002 tokens of a 5,000-token cache the first still holds.
    assert second.first_token_s > first.finished_s
    assert second.first_token_s - first.finished_s == pytest.approx(3.0)


def test_max_num_seqs_caps_the_batch_and_ongoing_counts_queued_requests() -> None:
    engine = ReplicaEngine(model(max_num_seqs=2))
    for i in range(3):
        engine.submit(SimRequest(i, 0.0, prompt_tokens=100, output_tokens=5))
    result = engine.step(0.0)
    assert len(engine.running) == 2
    assert len(engine.waiting) == 1
    assert engine.ongoing == 3
    # Both prompts share the step: 200 tokens at 1,000/s.
    assert result.duration_s == pytest.approx(0.2)

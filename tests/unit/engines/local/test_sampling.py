"""Token sampling: greedy, seeded determinism, and the nucleus never leaving the top_p set."""

from __future__ import annotations

import numpy as np

from corral.engines.local.sampling import SamplingParams, make_rng, sample

LOGITS = np.log(np.array([0.5, 0.3, 0.15, 0.05], dtype=np.float32))


def draws(params: SamplingParams, seed: int | None, count: int = 200) -> list[int]:
    rng = make_rng(seed)
    return [sample(LOGITS, params, rng) for _ in range(count)]


def test_temperature_zero_is_argmax() -> None:
    assert set(draws(SamplingParams(max_tokens=1, temperature=0.0), None, 20)) == {0}


def test_same_seed_same_tokens_and_index_changes_them() -> None:
    params = SamplingParams(max_tokens=1, temperature=1.0)
    assert draws(params, 7) == draws(params, 7)
    zeroth, first = make_rng(7, 0), make_rng(7, 1)
    assert [sample(LOGITS, params, zeroth) for _ in range(50)] != [
        sample(LOGITS, params, first) for _ in range(50)
    ]


def test_sampling_follows_the_distribution() -> None:
    counts = np.bincount(draws(SamplingParams(max_tokens=1), 1, 4000), minlength=4) / 4000
    assert np.allclose(counts, [0.5, 0.3, 0.15, 0.05], atol=0.03)


def test_top_p_keeps_only_the_nucleus() -> None:
    picked = set(draws(SamplingParams(max_tokens=1, top_p=0.75), 3, 500))
    assert picked == {0, 1}
    assert set(draws(SamplingParams(max_tokens=1, top_p=0.01), 3, 50)) == {0}


def test_top_p_on_a_large_flat_vocabulary() -> None:
    logits = np.zeros(50_000, dtype=np.float32)
    logits[123] = 5.0
    rng = make_rng(0)
    tokens = {sample(logits, SamplingParams(max_tokens=1, top_p=0.9), rng) for _ in range(50)}
    assert 123 in tokens
    assert len(tokens) > 10  # the nucleus grew past the first partial sort of 64 ids

"""A tiny fake decoder and tokenizer stream whose next token is always the last one plus one."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from corral.engines.local.sampling import SamplingParams
from corral.engines.local.scheduler import Delta, Generation

VOCAB = 50


class CountingDecoder:
    """Keeps a real per-slot cache of token ids; the next token is (last + 1) mod VOCAB."""

    def __init__(self, max_batch: int) -> None:
        self.max_batch = max_batch
        self.slots: list[list[int]] = [[] for _ in range(max_batch)]
        self.calls: list[tuple[object, ...]] = []

    def prefill(self, slot: int, tokens: Sequence[int], cached: int) -> np.ndarray:
        assert len(self.slots[slot]) >= cached
        self.slots[slot] = self.slots[slot][:cached] + list(tokens)
        self.calls.append(("prefill", slot, list(tokens), cached))
        return self._logits(slot)

    def decode(self, tokens: Sequence[int], cached: Sequence[int]) -> np.ndarray:
        self.calls.append(("decode", list(tokens), list(cached)))
        rows = []
        for slot, (token, length) in enumerate(zip(tokens, cached, strict=True)):
            self.slots[slot] = [*self.slots[slot][:length], token]
            rows.append(self._logits(slot))
        return np.stack(rows)

    def move(self, source: int, target: int, length: int) -> None:
        self.calls.append(("move", source, target, length))
        self.slots[target] = list(self.slots[source][:length])

    def decode_sizes(self) -> list[int]:
        return [len(c[1]) for c in self.calls if c[0] == "decode"]  # type: ignore[arg-type]

    def _logits(self, slot: int) -> np.ndarray:
        logits = np.zeros(VOCAB, dtype=np.float32)
        logits[(self.slots[slot][-1] + 1) % VOCAB] = 10.0
        return logits


class LetterStream:
    """Token n reads as the letter chr(ord('a') + n % 26)."""

    def step(self, token: int) -> str:
        return chr(ord("a") + token % 26)


class Collector:
    """Gathers the deltas of one or more sequences."""

    def __init__(self) -> None:
        self.deltas: list[Delta] = []

    def __call__(self, delta: Delta) -> None:
        self.deltas.append(delta)

    def text(self, index: int = 0) -> str:
        return "".join(d.text for d in self.deltas if d.index == index)

    def final(self, index: int = 0) -> Delta | None:
        ends = [d for d in self.deltas if d.index == index and d.finish_reason]
        assert len(ends) <= 1
        return ends[0] if ends else None


def sequence(
    prompt: list[int],
    sink: Collector,
    *,
    max_tokens: int = 5,
    stop: tuple[str, ...] = (),
    index: int = 0,
) -> Generation:
    params = SamplingParams(max_tokens=max_tokens, temperature=0.0, stop=stop)
    return Generation(prompt, params, sink, LetterStream(), index=index)

"""Choosing the next token from logits: greedy, temperature and nucleus (top_p) sampling."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Logits = npt.NDArray[np.float32]

# Below this temperature sampling is indistinguishable from argmax; treat it as greedy.
_GREEDY_BELOW = 1e-4


@dataclass(frozen=True)
class SamplingParams:
    """How one sequence is generated."""

    max_tokens: int
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int | None = None
    stop: tuple[str, ...] = ()


def make_rng(seed: int | None, index: int = 0) -> np.random.Generator:
    """A generator for one sequence; the same seed and index give the same tokens."""
    if seed is None:
        return np.random.default_rng()
    return np.random.default_rng([seed & 0xFFFFFFFFFFFFFFFF, index])


def sample(logits: Logits, params: SamplingParams, rng: np.random.Generator) -> int:
    """The next token id for one row of logits."""
    if params.temperature < _GREEDY_BELOW:
        return int(np.argmax(logits))
    scaled = logits.astype(np.float64) / params.temperature
    probs = np.exp(scaled - scaled.max())
    probs /= probs.sum()
    if params.top_p < 1.0:
        ids, weights = _nucleus(probs, params.top_p)
    else:
        ids, weights = None, probs
    cumulative = np.cumsum(weights)
    pick = int(np.searchsorted(cumulative, rng.random() * cumulative[-1], side="right"))
    pick = min(pick, len(weights) - 1)
    return int(ids[pick]) if ids is not None else pick


def _nucleus(
    probs: npt.NDArray[np.float64], top_p: float
) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.float64]]:
    """The fewest most likely ids whose probability reaches ``top_p``, and their weights."""
    size = len(probs)
    k = min(size, 64)
    while True:
        # A partial sort of the head is enough unless the head holds less than top_p.
        head = np.argpartition(-probs, k - 1)[:k] if k < size else np.arange(size)
        ordered = head[np.argsort(-probs[head], kind="stable")]
        cumulative = np.cumsum(probs[ordered])
        if cumulative[-1] >= top_p or k == size:
            keep = int(np.searchsorted(cumulative, top_p, side="left")) + 1
            keep = min(keep, len(ordered))
            return ordered[:keep], probs[ordered[:keep]]
        k = min(size, k * 8)

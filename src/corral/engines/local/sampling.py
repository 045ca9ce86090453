"""Choosing the next token from logits: greedy, temperature and nucleus (top_p) sampling."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

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


FALLBACK_TEMPERATURE = 0.0
FALLBACK_TOP_P = 1.0
"""For a model that ships no generation_config.json (a GGUF file): greedy decoding, what
transformers does without one. Measured on SmolLM2-135M (bench/local/first_hello.py): greedy
answers "Hello!" in 3 tokens; sampling at 0.2-1.0 often runs on to max_tokens."""


@dataclass(frozen=True)
class GenerationDefaults:
    """What a request gets for what it leaves out: answers end by ``max_tokens`` (at most what
    the context leaves), at the model's own temperature and top_p."""

    max_tokens: int
    temperature: float = FALLBACK_TEMPERATURE
    top_p: float = FALLBACK_TOP_P


def model_sampling(generation_config: Mapping[str, Any] | None) -> dict[str, float]:
    """The sampling a model's generation_config.json asks for, as Hugging Face reads it: no
    ``do_sample`` (or false) is greedy decoding; otherwise its temperature and top_p. Empty
    when the model has no such file."""
    if generation_config is None:
        return {}
    if not generation_config.get("do_sample", False):
        return {"temperature": 0.0, "top_p": 1.0}
    found = {"temperature": 1.0, "top_p": 1.0}  # Hugging Face's own defaults when sampling
    for name in found:
        value = generation_config.get(name)
        if isinstance(value, int | float) and not isinstance(value, bool):
            found[name] = float(value)
    return found


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

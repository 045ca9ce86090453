"""Embedding pooling and the batching service, with a fake encoder."""

from __future__ import annotations

import asyncio
import base64
import struct

import numpy as np
import pytest
from prometheus_client import CollectorRegistry
from tokenizers import Tokenizer
from tokenizers.models import WordLevel
from tokenizers.pre_tokenizers import Whitespace

from corral.engines.local.embedding_service import EmbeddingService
from corral.engines.local.encoders import Embedder
from corral.engines.local.metrics import EmbeddingCollector
from corral.engines.local.parsing import EmbeddingRequest
from corral.errors import InvalidRequest, Overloaded

WORDS = {"[UNK]": 0, "a": 1, "b": 2, "c": 3}


def tokenizer() -> Tokenizer:
    tok = Tokenizer(WordLevel(WORDS, unk_token="[UNK]"))
    tok.pre_tokenizer = Whitespace()
    return tok


class OneHotEncoder:
    """Hidden state of token t is the unit vector e_t; padding positions are garbage."""

    def __init__(self) -> None:
        self.batches: list[tuple[int, int]] = []

    def hidden_states(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        self.batches.append(ids.shape)
        hidden = np.eye(4, dtype=np.float32)[ids]
        hidden[mask == 0] = 100.0
        return hidden


def embedder(encoder: OneHotEncoder, *, normalize: bool = False, batch: int = 32) -> Embedder:
    return Embedder(
        encoder, tokenizer(), max_tokens=8, pooling="mean", normalize=normalize, batch_size=batch
    )


def test_mean_pooling_ignores_padding_and_keeps_order() -> None:
    vectors, counts = embedder(OneHotEncoder()).embed(["a b b", "c"])
    assert counts == [3, 1]
    assert np.allclose(vectors[0], [0, 1 / 3, 2 / 3, 0])
    assert np.allclose(vectors[1], [0, 0, 0, 1])


def test_normalized_and_batched_by_length() -> None:
    encoder = OneHotEncoder()
    vectors, _ = embedder(encoder, normalize=True, batch=2).embed(["a b", "c", "a", "b b c"])
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0)
    assert sorted(encoder.batches) == [(2, 1), (2, 3)]  # short ones together, long ones together


async def test_service_answers_floats_and_base64() -> None:
    service = EmbeddingService(embedder(OneHotEncoder()), dimensions=4, model_name="m", max_queue=4)
    service.start()
    try:
        floats = await service.answer(EmbeddingRequest("", ["a", "b c"], False, None))
        packed = await service.answer(EmbeddingRequest("x", ["a", "b c"], True, None))
    finally:
        service.stop()
    assert floats["model"] == "m"
    assert packed["model"] == "x"
    assert floats["usage"] == {"prompt_tokens": 3, "total_tokens": 3}
    first = floats["data"][0]["embedding"]
    decoded = struct.unpack("<4f", base64.b64decode(packed["data"][0]["embedding"]))
    assert np.allclose(first, decoded)
    assert [d["index"] for d in floats["data"]] == [0, 1]


async def test_service_refuses_other_dimensions() -> None:
    service = EmbeddingService(embedder(OneHotEncoder()), dimensions=4, model_name="m", max_queue=4)
    with pytest.raises(InvalidRequest, match="4-dimensional"):
        await service.answer(EmbeddingRequest("", ["a"], False, 8))


async def test_service_metrics_count_texts_tokens_and_refusals() -> None:
    service = EmbeddingService(embedder(OneHotEncoder()), dimensions=4, model_name="m", max_queue=1)
    registry = CollectorRegistry()
    registry.register(EmbeddingCollector("m", service))

    def sample(name: str) -> float | None:
        return registry.get_sample_value(name, {"model": "m"})

    service.start()
    try:
        await service.answer(EmbeddingRequest("m", ["a b", "c"], base64=False, dimensions=None))
    finally:
        service.stop()
    assert sample("corral_engine_embedded_texts_total") == 2
    assert sample("corral_engine_prompt_tokens_total") == 3
    assert sample("corral_engine_batch_size") == 0  # idle again
    stopped = EmbeddingService(embedder(OneHotEncoder()), dimensions=4, model_name="m", max_queue=1)
    registry = CollectorRegistry()
    registry.register(EmbeddingCollector("m", stopped))
    request = EmbeddingRequest("m", ["a"], base64=False, dimensions=None)
    first = asyncio.ensure_future(stopped.answer(request))  # queued: no worker is running
    await asyncio.sleep(0)
    with pytest.raises(Overloaded):
        await stopped.answer(request)
    assert sample("corral_engine_queue_depth") == 1
    assert sample("corral_engine_queue_rejections_total") == 1
    first.cancel()

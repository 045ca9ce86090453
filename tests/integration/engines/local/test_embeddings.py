"""The local embedding engine with the OpenAI SDK: dimensions, encodings, similarity, limits."""

from __future__ import annotations

import numpy as np
import openai
import pytest

pytestmark = pytest.mark.local_model

MODEL = "minilm"
SENTENCES = [
    "A cat is sitting on the mat.",
    "A kitten rests on a rug.",
    "The stock market fell sharply today.",
]


def vectors(client: openai.OpenAI, **extra: object) -> np.ndarray:
    reply = client.embeddings.create(model=MODEL, input=SENTENCES, **extra)  # type: ignore[arg-type]
    assert [d.index for d in reply.data] == [0, 1, 2]
    assert reply.usage.prompt_tokens > len(SENTENCES)
    return np.array([d.embedding for d in reply.data], dtype=np.float32)


def test_dimensions_and_unit_length(embeddings: openai.OpenAI) -> None:
    found = vectors(embeddings, encoding_format="float")
    assert found.shape == (3, 384)
    assert np.allclose(np.linalg.norm(found, axis=1), 1.0, atol=1e-4)


def test_similar_sentences_are_closer_than_unrelated(embeddings: openai.OpenAI) -> None:
    found = vectors(embeddings, encoding_format="float")
    similar, unrelated = found[0] @ found[1], found[0] @ found[2]
    assert similar > unrelated + 0.2


def test_base64_matches_float(embeddings: openai.OpenAI) -> None:
    # The SDK asks for base64 by default and decodes it itself.
    assert np.allclose(vectors(embeddings), vectors(embeddings, encoding_format="float"), atol=1e-6)


def test_single_string_input(embeddings: openai.OpenAI) -> None:
    reply = embeddings.embeddings.create(model=MODEL, input="hello world")
    assert len(reply.data) == 1
    assert len(reply.data[0].embedding) == 384


def test_too_many_inputs_is_a_400(embeddings: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError, match="at most 2048"):
        embeddings.embeddings.create(model=MODEL, input=["x"] * 2049)


def test_chat_on_an_embedding_model_is_a_400(embeddings: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError, match="embeddings"):
        embeddings.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "hi"}]
        )

"""The general path: a Hugging Face folder on disk served by the transformers backend.

The chat model is a tiny random Llama built here (with SmolLM2's tokenizer and chat template),
so the test needs no download; it checks protocol and shapes, not what the model says.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import openai
import pytest

from corral.catalog import LocalEngineConfig
from corral.engines.local.launcher import RunningEngine
from support.local_engines import EngineLoop

pytestmark = pytest.mark.local_model


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory: pytest.TempPathFactory, engine_loop: EngineLoop) -> Path:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from corral.engines.local.preparation import prepare

    folder = tmp_path_factory.mktemp("tiny-llama")
    smollm = prepare("smollm2-135m-instruct", "chat", "auto", engine_loop.data_dir, print)
    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
        if (smollm.tokenizer_dir / name).exists():
            shutil.copy(smollm.tokenizer_dir / name, folder / name)
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=49152,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        bos_token_id=1,
        eos_token_id=2,
        tie_word_embeddings=True,
    )
    LlamaForCausalLM(config).save_pretrained(folder)
    return folder


def test_local_folder_on_the_transformers_backend(
    tiny_llama: Path, engine_loop: EngineLoop, sdk: Callable[[RunningEngine], openai.OpenAI]
) -> None:
    config = LocalEngineConfig(model=str(tiny_llama), backend="transformers", max_batch_size=2)
    # Prepared beside the model, not in the shared cache: each run builds a new tiny model.
    engine = engine_loop.launch("tiny", config, data_dir=tiny_llama.parent / "data")
    client = sdk(engine)
    messages = [{"role": "user", "content": "hello"}]
    reply = client.chat.completions.create(
        model="tiny", messages=messages, max_tokens=6, temperature=0, n=2
    )
    assert reply.usage is not None
    assert reply.usage.completion_tokens <= 12
    assert len(reply.choices) == 2
    chunks = list(
        client.chat.completions.create(
            model="tiny",
            messages=messages,
            max_tokens=6,
            temperature=0,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == reply.choices[0].message.content
    assert chunks[-1].usage is not None
    with pytest.raises(openai.BadRequestError, match="context"):
        client.chat.completions.create(model="tiny", messages=messages, max_tokens=1000)


def test_embeddings_on_the_transformers_backend(
    engine_loop: EngineLoop, sdk: Callable[[RunningEngine], openai.OpenAI]
) -> None:
    config = LocalEngineConfig(model="all-minilm-l6-v2", task="embeddings", backend="transformers")
    engine = engine_loop.launch("minilm-torch", config)
    client = sdk(engine)
    torch_vectors = client.embeddings.create(model="m", input=["a cat", "stock markets"]).data
    onnx = engine_loop.launch(
        "minilm-onnx", LocalEngineConfig(model="all-minilm-l6-v2", task="embeddings")
    )
    onnx_client = sdk(onnx)
    onnx_vectors = onnx_client.embeddings.create(model="m", input=["a cat", "stock markets"]).data
    for ours, theirs in zip(torch_vectors, onnx_vectors, strict=True):
        assert ours.embedding == pytest.approx(theirs.embedding, abs=1e-4)

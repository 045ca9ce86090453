"""Real local engines for the whole module: SmolLM2 (chat) and MiniLM (embeddings), packaged."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import openai
import pytest

from corral.catalog import LocalEngineConfig
from corral.engines.local.launcher import RunningEngine
from support.local_engines import EngineLoop, require_packaged_models


@pytest.fixture(scope="session")
def engine_loop() -> Iterator[EngineLoop]:
    require_packaged_models()
    loop = EngineLoop()
    yield loop
    loop.close()


@pytest.fixture(scope="session")
def chat_engine(engine_loop: EngineLoop) -> RunningEngine:
    return engine_loop.launch("smollm2", LocalEngineConfig(model="smollm2-135m-instruct"))


@pytest.fixture(scope="session")
def one_slot_engine(engine_loop: EngineLoop) -> RunningEngine:
    """One decode slot and room for one waiting request, to see slots free and queues fill."""
    config = LocalEngineConfig(model="smollm2-135m-instruct", max_batch_size=1, max_queue=1)
    return engine_loop.launch("smollm2-one-slot", config)


@pytest.fixture(scope="session")
def embedding_engine(engine_loop: EngineLoop) -> RunningEngine:
    return engine_loop.launch(
        "minilm", LocalEngineConfig(model="all-minilm-l6-v2", task="embeddings")
    )


@pytest.fixture
def sdk() -> Iterator[Callable[[RunningEngine], openai.OpenAI]]:
    """Makes OpenAI SDK clients for engines; closes them after the test."""
    clients: list[openai.OpenAI] = []

    def make(engine: RunningEngine) -> openai.OpenAI:
        client = openai.OpenAI(base_url=engine.base_url, api_key="unused", max_retries=0)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def chat(
    chat_engine: RunningEngine, sdk: Callable[[RunningEngine], openai.OpenAI]
) -> openai.OpenAI:
    return sdk(chat_engine)


@pytest.fixture
def embeddings(
    embedding_engine: RunningEngine, sdk: Callable[[RunningEngine], openai.OpenAI]
) -> openai.OpenAI:
    return sdk(embedding_engine)

"""The embedded default end to end: Corral's gateway in front of local engines it starts itself."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import httpx
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from corral.catalog import LocalEngineConfig, ModelSpec
from corral.composition.platform import Platform, running_platform
from corral.composition.serving import ServerThread
from corral.principals import KeyDirectory, Principal, Role, new_api_key
from corral.settings import CorralSettings
from support.local_engines import MODELS_DIR, require_packaged_models

pytestmark = pytest.mark.local_model


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[openai.OpenAI, str]]:
    require_packaged_models()
    keys = KeyDirectory(b"test-secret")
    key = new_api_key()
    keys.add(keys.hash(key), Principal(key_id="k", role=Role.PLATFORM_ADMIN, team_id="t"))
    settings = CorralSettings(
        data_dir=MODELS_DIR,
        models=[
            ModelSpec(
                name="smollm2-135m-instruct",
                engine=LocalEngineConfig(model="smollm2", max_batch_size=1, max_queue=4),
            ),
            ModelSpec(
                name="all-minilm-l6-v2",
                engine=LocalEngineConfig(model="minilm", task="embeddings"),
            ),
        ],
    )

    @asynccontextmanager
    async def factory() -> AsyncIterator[Platform]:
        async with running_platform(settings, keys=keys) as platform:
            yield platform

    with ServerThread(factory) as server:
        client = openai.OpenAI(base_url=f"{server.url}/v1", api_key=key, max_retries=0)
        yield client, server.metrics_url
        client.close()


@pytest.fixture(scope="module")
def corral(served: tuple[openai.OpenAI, str]) -> openai.OpenAI:
    return served[0]


def test_stream_through_the_gateway_ends_with_usage(corral: openai.OpenAI) -> None:
    chunks = list(
        corral.chat.completions.create(
            model="smollm2-135m-instruct",
            messages=[{"role": "user", "content": "Name three colours."}],
            max_tokens=12,
            temperature=0,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert 1 <= chunks[-1].usage.completion_tokens <= 12


def test_embeddings_through_the_gateway(corral: openai.OpenAI) -> None:
    reply = corral.embeddings.create(model="all-minilm-l6-v2", input=["one", "two"])
    assert [len(d.embedding) for d in reply.data] == [384, 384]
    assert reply.usage.prompt_tokens >= 2


def test_abandoned_stream_frees_the_engine_slot(corral: openai.OpenAI) -> None:
    """The model has one slot; the gateway must pass the disconnect on so the next call runs."""
    stream = corral.chat.completions.create(
        model="smollm2-135m-instruct",
        messages=[{"role": "user", "content": "Write a very long story."}],
        max_tokens=1500,
        stream=True,
    )
    for seen, _ in enumerate(stream):
        if seen == 3:
            break
    stream.close()
    started = time.monotonic()
    reply = corral.chat.completions.create(
        model="smollm2-135m-instruct",
        messages=[{"role": "user", "content": "Hi"}],
        max_tokens=4,
        temperature=0,
    )
    assert time.monotonic() - started < 5.0
    assert reply.usage is not None


def test_the_gateways_metrics_include_both_local_engines(
    served: tuple[openai.OpenAI, str],
) -> None:
    """One scrape target: the engines' own /metrics are merged into the gateway's."""
    corral, metrics_url = served
    corral.embeddings.create(model="all-minilm-l6-v2", input=["count me"])
    text = httpx.get(metrics_url, timeout=10).text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    depth = families["corral_engine_queue_depth"]
    assert {s.labels["model"] for s in depth.samples} == {
        "smollm2-135m-instruct",
        "all-minilm-l6-v2",
    }
    assert text.count("# TYPE corral_engine_queue_depth ") == 1  # merged, not repeated
    texts = families["corral_engine_embedded_texts"].samples
    assert next(s.value for s in texts if s.name.endswith("_total")) >= 1
    assert "corral_requests" in families  # the gateway's own metrics are still there

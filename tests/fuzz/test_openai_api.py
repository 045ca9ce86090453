"""Hypothesis against the gateway's /v1 endpoints, with request bodies drawn from the official
OpenAI SDK's request types (and the same fields given wrong values): no 5xx, and every 4xx in
OpenAI's error envelope."""

from __future__ import annotations

import collections.abc
import json
import typing
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from fuzz.budget import DERANDOMIZE, EXAMPLES
from support.gateway_harness import start_gateway

hypothesis = pytest.importorskip("hypothesis")
st = hypothesis.strategies

from openai.types import completion_create_params, embedding_create_params  # noqa: E402
from openai.types.chat import completion_create_params as chat_params  # noqa: E402


def _short_lists(iterable_type: Any) -> Any:
    # The SDK types every array as Iterable[X]; drawn as short lists, so generation stays fast.
    args = typing.get_args(iterable_type)
    return st.lists(st.from_type(args[0]) if args else st.none(), max_size=3)


st.register_type_strategy(collections.abc.Iterable, _short_lists)

ENDPOINTS = {
    "/v1/chat/completions": (
        chat_params.CompletionCreateParamsNonStreaming,
        chat_params.CompletionCreateParamsStreaming,
    ),
    "/v1/completions": (
        completion_create_params.CompletionCreateParamsNonStreaming,
        completion_create_params.CompletionCreateParamsStreaming,
    ),
    "/v1/embeddings": (embedding_create_params.EmbeddingCreateParams,),
}
EDGES = st.sampled_from(["abc", "", -1, 0, 1, 7, 2**63, 10**30, 1.5, 1e300, [], {}, True])
"""Values that break naive field handling: wrong types, zero, beyond int64."""
JSON_VALUES = st.recursive(
    EDGES | st.none() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
FIELDS = [
    "model",
    "messages",
    "prompt",
    "input",
    "stream",
    "stream_options",
    "max_tokens",
    "max_completion_tokens",
    "n",
    "temperature",
    "tools",
    "user",
]


def bodies(types: tuple[Any, ...]) -> Any:
    """A valid-by-the-SDK body; mostly for a model that exists, sometimes with fields broken."""
    typed = st.one_of(*(st.from_type(t) for t in types))
    model = st.sampled_from(["fake-chat", "gpt-fake", None])
    broken = st.dictionaries(st.sampled_from(FIELDS), JSON_VALUES, max_size=3)
    return st.tuples(typed, model, broken).map(
        lambda drawn: {**drawn[0], **({"model": drawn[1]} if drawn[1] else {}), **drawn[2]}
    )


@pytest.fixture(scope="module")
def gateway() -> Iterator[tuple[httpx.Client, str]]:
    server, _, key = start_gateway()
    with server, httpx.Client(base_url=server.url, timeout=30) as client:
        yield client, key


def check(response: httpx.Response, body: object) -> None:
    assert response.status_code < 500, f"{response.status_code} for {body!r}: {response.text}"
    if response.status_code >= 400:
        error = response.json()["error"]
        assert isinstance(error["message"], str)
        assert error["message"]
        assert {"type", "param", "code"} <= set(error)


@pytest.mark.parametrize("path", list(ENDPOINTS))
def test_no_body_breaks_the_gateway(gateway: tuple[httpx.Client, str], path: str) -> None:
    client, key = gateway
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}

    @hypothesis.settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=DERANDOMIZE,
        database=None,
        suppress_health_check=list(hypothesis.HealthCheck),
    )
    @hypothesis.given(body=bodies(ENDPOINTS[path]))
    def one(body: dict[str, Any]) -> None:
        raw = json.dumps(
            body, default=str
        )  # ensure_ascii: lone surrogates travel as \\ud800 escapes
        with client.stream("POST", path, content=raw, headers=headers) as response:
            response.read()
            check(response, body)

    one()

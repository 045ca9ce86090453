"""The local chat engine with the OpenAI SDK: shapes, streaming, stops, limits, seeds, batching."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import openai
import pytest

from corral.engines.local.launcher import RunningEngine

pytestmark = pytest.mark.local_model

MODEL = "smollm2"
STORY = [{"role": "user", "content": "Write a long story about a lighthouse keeper."}]


def ask(client: openai.OpenAI, **extra: object) -> openai.types.chat.ChatCompletion:
    options: dict[str, object] = {"messages": STORY, "max_tokens": 24, "temperature": 0}
    options.update(extra)
    return client.chat.completions.create(model=MODEL, **options)  # type: ignore[call-overload]


def test_whole_answer_has_text_and_exact_usage(chat: openai.OpenAI) -> None:
    reply = ask(chat, messages=[{"role": "user", "content": "Say hello."}], max_tokens=16)
    assert reply.object == "chat.completion"
    assert reply.model == MODEL
    choice = reply.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content
    assert choice.finish_reason in ("stop", "length")
    usage = reply.usage
    assert usage is not None
    assert usage.prompt_tokens > 3
    assert 1 <= usage.completion_tokens <= 16
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


def test_stream_carries_the_same_text_and_ends_with_usage(chat: openai.OpenAI) -> None:
    whole = ask(chat)
    chunks = list(ask(chat, stream=True, stream_options={"include_usage": True}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    assert chunks[0].choices[0].delta.role == "assistant"
    finishes = [
        c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason
    ]
    assert finishes == [whole.choices[0].finish_reason]
    last = chunks[-1]
    assert last.choices == []
    assert last.usage is not None
    assert last.usage == whole.usage


def test_max_tokens_is_exact(chat: openai.OpenAI) -> None:
    reply = ask(chat, max_tokens=7)
    assert reply.usage is not None
    assert reply.usage.completion_tokens == 7
    assert reply.choices[0].finish_reason == "length"


def test_stop_sequence_ends_the_answer_before_it(chat: openai.OpenAI) -> None:
    full = ask(chat, max_tokens=40).choices[0].message.content or ""
    words = full.split()
    assert len(words) > 6
    stop = " " + words[len(words) // 2]
    reply = ask(chat, max_tokens=40, stop=[stop])
    assert reply.choices[0].message.content == full[: full.index(stop)]
    assert reply.choices[0].finish_reason == "stop"


def test_same_seed_same_answer(chat: openai.OpenAI) -> None:
    first, second = (ask(chat, temperature=1.0, top_p=0.95, seed=1234) for _ in range(2))
    assert first.choices[0].message.content == second.choices[0].message.content


def test_n_choices(chat: openai.OpenAI) -> None:
    reply = ask(chat, n=2, max_tokens=5, temperature=1.0, seed=5)
    assert [c.index for c in reply.choices] == [0, 1]
    assert reply.usage is not None
    assert reply.usage.completion_tokens <= 10


def test_legacy_completions(chat: openai.OpenAI) -> None:
    reply = chat.completions.create(model=MODEL, prompt="Once upon a time", max_tokens=6)
    assert reply.object == "text_completion"
    assert reply.usage is not None
    assert reply.usage.completion_tokens <= 6
    assert isinstance(reply.choices[0].text, str)


def test_unsupported_parameters_are_refused_by_name(chat: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        ask(chat, logprobs=True)
    assert "logprobs" in str(info.value)
    with pytest.raises(openai.BadRequestError, match="context"):
        ask(chat, max_tokens=100_000)
    with pytest.raises(openai.BadRequestError, match="empty"):
        chat.completions.create(model=MODEL, prompt="", max_tokens=3)


async def test_four_concurrent_streams_all_complete(chat_engine: RunningEngine) -> None:
    client = openai.AsyncOpenAI(base_url=chat_engine.base_url, api_key="unused", max_retries=0)

    async def one(topic: str) -> tuple[str, str | None, int]:
        stream = await client.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": f"Tell me about {topic}."}],
            max_tokens=32,
            temperature=0,
            stream=True,
            stream_options={"include_usage": True},
        )
        text, finish, used = "", None, 0
        async for chunk in stream:
            if chunk.choices:
                text += chunk.choices[0].delta.content or ""
                finish = chunk.choices[0].finish_reason or finish
            if chunk.usage:
                used = chunk.usage.completion_tokens
        return text, finish, used

    try:
        results = await asyncio.gather(*(one(t) for t in ("cats", "rivers", "bread", "stars")))
    finally:
        await client.close()
    for text, finish, used in results:
        assert text
        assert finish in ("stop", "length")
        assert 1 <= used <= 32


def test_client_abort_frees_the_slot(
    one_slot_engine: RunningEngine, sdk: Callable[[RunningEngine], openai.OpenAI]
) -> None:
    client = sdk(one_slot_engine)
    stream = ask(client, max_tokens=1500, stream=True)
    for seen, _ in enumerate(stream):
        if seen == 3:
            break
    stream.close()
    started = time.monotonic()
    reply = ask(client, max_tokens=4, timeout=30)
    # Had the abandoned stream kept the only slot, this would wait for ~1500 tokens (15 s+).
    assert time.monotonic() - started < 5.0
    assert reply.usage is not None
    assert reply.usage.completion_tokens == 4


def test_full_queue_answers_503_with_retry_after(
    one_slot_engine: RunningEngine, sdk: Callable[[RunningEngine], openai.OpenAI]
) -> None:
    client = sdk(one_slot_engine)
    running = ask(client, max_tokens=1500, stream=True)
    # The role chunk comes before the slot is taken; the first text means it holds the slot.
    next(c for c in running if c.choices and c.choices[0].delta.content)
    waiting = ask(client, max_tokens=3, stream=True)  # returns once queued
    with pytest.raises(openai.APIStatusError) as info:
        ask(client, max_tokens=3)
    assert info.value.status_code == 503
    assert int(info.value.response.headers["retry-after"]) >= 1
    running.close()
    text = "".join(c.choices[0].delta.content or "" for c in waiting if c.choices)
    assert isinstance(text, str)

"""ScriptMultiplexer on a real Redis: a burst shares round trips, each caller gets its own reply."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis
from redis.commands.core import AsyncScript
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from corral.counters.multiplex import ScriptMultiplexer
from support.services import redis_url

pytestmark = pytest.mark.redis


@pytest.fixture
async def client() -> AsyncIterator[Redis]:
    redis = Redis.from_url(redis_url())
    yield redis
    await redis.aclose()


def echo_script(client: Redis) -> AsyncScript:
    # A text no one has loaded yet (unique comment): the first batch meets NOSCRIPT.
    return client.register_script(
        f"-- {uuid.uuid4().hex}\n"
        "if ARGV[1] == 'bad' then return redis.error_reply('bad argument') end\n"
        "return ARGV[1]"
    )


async def test_a_burst_shares_round_trips_and_every_caller_gets_its_own_reply(
    client: Redis,
) -> None:
    mux = ScriptMultiplexer(client, lanes=2)
    script = echo_script(client)
    await mux.call(script, [], ["warm"])  # loads the script
    replies = await asyncio.gather(*(mux.call(script, [], [str(i)]) for i in range(300)))
    assert replies == [str(i).encode() for i in range(300)]
    assert mux.stats.calls == 301
    assert mux.stats.round_trips <= 1 + 2 * 3  # at most 128 a batch, over two lanes
    assert mux.stats.waiting == 0


async def test_a_script_redis_does_not_know_yet_is_loaded_and_run(client: Redis) -> None:
    mux = ScriptMultiplexer(client, lanes=1)
    script = echo_script(client)
    replies = await asyncio.gather(*(mux.call(script, [], [str(i)]) for i in range(5)))
    assert replies == [str(i).encode() for i in range(5)]


async def test_an_error_reaches_only_the_caller_it_belongs_to(client: Redis) -> None:
    mux = ScriptMultiplexer(client, lanes=1)
    script = echo_script(client)
    await mux.call(script, [], ["warm"])
    results = await asyncio.gather(
        *(mux.call(script, [], [a]) for a in ("a", "bad", "c")),
        return_exceptions=True,
    )
    assert results[0] == b"a"
    assert isinstance(results[1], ResponseError)
    assert results[2] == b"c"


async def test_a_lost_connection_fails_every_call_in_the_batch() -> None:
    gone = Redis.from_url("redis://127.0.0.1:9/0", socket_connect_timeout=0.5)
    try:
        mux = ScriptMultiplexer(gone, lanes=1)
        script = echo_script(gone)
        results = await asyncio.gather(
            *(mux.call(script, [], [str(i)]) for i in range(3)),
            return_exceptions=True,
        )
    finally:
        await gone.aclose()
    assert all(isinstance(r, RedisConnectionError) for r in results)

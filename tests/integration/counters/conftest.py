"""Redis counters under test: a unique key prefix per test, every key and client cleaned up."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable

import pytest
from redis.asyncio import Redis

from corral.counters.redis import RedisCounters
from support.services import redis_url

GatewayFactory = Callable[[], RedisCounters]


@pytest.fixture
def prefix() -> str:
    return f"test-{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def gateways(prefix: str) -> AsyncIterator[GatewayFactory]:
    """Makes RedisCounters on their own connections, as separate gateways would have."""
    made: list[RedisCounters] = []

    def make() -> RedisCounters:
        counters = RedisCounters.from_url(redis_url(), prefix=prefix)
        made.append(counters)
        return counters

    yield make
    for counters in made:
        await counters.aclose()
    admin = Redis.from_url(redis_url())
    try:
        keys = [key async for key in admin.scan_iter(match="{" + prefix + "}*", count=1000)]
        if keys:
            await admin.delete(*keys)
    finally:
        await admin.aclose()

"""Redis counters under test: a unique key prefix per test, every key and client cleaned up."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable

import pytest

from corral.counters.redis import RedisCounters
from support.redis_keys import forget
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
    forget(prefix)

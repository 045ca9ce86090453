"""The Redis connection pool of the shared counters: a bounded wait for a connection, measured."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

from redis.asyncio import BlockingConnectionPool
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError


class PoolBusy(RedisError):
    """Every connection stayed in use for the whole wait: back-pressure, not an outage."""


@dataclass(slots=True)
class PoolStats:
    """What the pool has done since start (read by the counters' metrics at scrape time)."""

    size: int
    in_use: int = 0
    waiting: int = 0
    """Callers waiting for a connection right now (for a free one, or while one connects)."""
    acquired: int = 0
    wait_seconds: float = 0.0
    """Total time calls waited: queued behind busy lanes, or for a connection."""
    calls: int = 0
    """Script calls sent (admissions and settlements)."""
    round_trips: int = 0
    """Pipelines they went in: fewer than calls under a burst."""
    busy: int = 0
    """Times a caller gave up because every connection stayed in use (``PoolBusy``)."""


class MeteredPool(BlockingConnectionPool):
    """A pool of at most ``max_connections`` that queues a caller for up to ``timeout`` seconds
    when all are in use, then raises ``PoolBusy``; redis-py's default pool raises at once
    (``MaxConnectionsError``), which a burst of concurrent requests hits and which is
    indistinguishable from Redis being down."""

    def __init__(self, *, max_connections: int, timeout: float, **connection_kwargs: Any) -> None:
        super().__init__(max_connections=max_connections, timeout=timeout, **connection_kwargs)
        self.stats = PoolStats(size=max_connections)

    async def get_connection(self, *args: Any, **kwargs: Any) -> Any:
        stats = self.stats
        stats.waiting += 1
        started = time.monotonic()
        try:
            connection = await super().get_connection(*args, **kwargs)  # type: ignore[no-untyped-call]
        except RedisConnectionError as exc:
            if isinstance(exc.__cause__, asyncio.TimeoutError):
                stats.busy += 1
                raise PoolBusy(
                    f"all {stats.size} connections to Redis stayed busy for {self.timeout}s"
                ) from exc
            raise
        finally:
            stats.waiting -= 1
            stats.wait_seconds += time.monotonic() - started
        stats.acquired += 1
        stats.in_use = len(self._in_use_connections)
        return connection

    async def release(self, connection: Any) -> None:
        await super().release(connection)
        self.stats.in_use = len(self._in_use_connections)

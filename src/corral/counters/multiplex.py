"""Script calls to Redis multiplexed: those that arrive while all lanes are busy go together.

Under a burst, hundreds of admissions want Redis at once. Each still makes exactly one script
call, but instead of one connection and one round trip each, calls queue while ``lanes``
pipelines are in flight and the next free lane sends everything queued (up to ``max_batch``)
as one pipeline: one write, one read, one connection. With no burst a call goes out at once,
alone, as before. A call still queued after ``wait`` gives up with ``PoolBusy``. Calls in a
pipeline are independent (no MULTI): each script is atomic on its own, and each caller gets
its own reply or error.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError, RedisError

from corral.counters.pool import PoolBusy, PoolStats


@dataclass(slots=True)
class _Call:
    script: AsyncScript
    keys: list[str]
    args: list[str | int]
    reply: asyncio.Future[Any]
    queued_at: float
    sent: bool = False


class ScriptMultiplexer:
    """Sends ``EVALSHA`` calls to ``client``, batching the ones that queue behind busy lanes."""

    def __init__(
        self,
        client: Redis,
        *,
        lanes: int,
        wait: float = 1.0,
        stats: PoolStats | None = None,
        max_batch: int = 128,
    ) -> None:
        self._client = client
        self._lanes = max(1, lanes)
        self._wait = wait
        self.stats = stats if stats is not None else PoolStats(size=lanes)
        self._max_batch = max_batch
        self._queue: deque[_Call] = deque()
        self._busy = 0
        self._flushes: set[asyncio.Task[None]] = set()

    async def call(self, script: AsyncScript, keys: list[str], args: list[str | int]) -> Any:
        """The script's reply; the Redis error it raised, or the one that failed its batch."""
        loop = asyncio.get_running_loop()
        call = _Call(script, keys, args, loop.create_future(), loop.time())
        self._queue.append(call)
        self.stats.waiting += 1
        if self._busy < self._lanes:
            self._busy += 1
            task = loop.create_task(self._flush())
            self._flushes.add(task)
            task.add_done_callback(self._flushes.discard)
        timer = loop.call_later(self._wait, self._give_up, call)
        try:
            return await call.reply
        finally:
            timer.cancel()
            if not call.sent:
                self.stats.waiting -= 1

    def _give_up(self, call: _Call) -> None:
        """A call still queued after ``wait``: every lane stayed busy (sent calls run on)."""
        if not call.sent and not call.reply.done():
            self.stats.busy += 1
            self.stats.wait_seconds += self._wait
            call.reply.set_exception(
                PoolBusy(f"no round trip to Redis was free for {self._wait}s ({self._lanes} lanes)")
            )

    async def aclose(self) -> None:
        """Stop sending; calls still queued or in flight fail."""
        for task in list(self._flushes):
            task.cancel()
        await asyncio.gather(*self._flushes, return_exceptions=True)
        while self._queue:
            _answer(self._queue.popleft(), error=_closed())

    async def _flush(self) -> None:
        try:
            while self._queue:
                batch = [
                    self._queue.popleft() for _ in range(min(self._max_batch, len(self._queue)))
                ]
                live = [c for c in batch if not c.reply.done()]  # callers gone meanwhile
                now = asyncio.get_running_loop().time()
                for call in live:
                    call.sent = True
                    self.stats.waiting -= 1
                    self.stats.wait_seconds += now - call.queued_at
                if live:
                    await self._send(live)
        finally:
            self._busy -= 1

    async def _send(self, batch: list[_Call]) -> None:
        self.stats.round_trips += 1
        self.stats.calls += len(batch)
        try:
            async with self._client.pipeline(transaction=False) as pipe:
                for call in batch:
                    pipe.evalsha(call.script.sha, len(call.keys), *call.keys, *call.args)
                replies = await pipe.execute(raise_on_error=False)
        except BaseException as exc:  # the whole batch failed: every caller sees why
            for call in batch:
                _answer(call, error=exc if isinstance(exc, Exception) else _closed())
            if not isinstance(exc, Exception):
                raise
            return
        for call, reply in zip(batch, replies, strict=True):
            if isinstance(reply, NoScriptError):
                await self._load_and_call(call)  # Redis restarted or flushed its scripts
            elif isinstance(reply, Exception):
                _answer(call, error=reply)
            else:
                _answer(call, value=reply)

    async def _load_and_call(self, call: _Call) -> None:
        try:
            value = await call.script(keys=call.keys, args=call.args)
        except Exception as exc:
            _answer(call, error=exc)
        else:
            _answer(call, value=value)


def _closed() -> RedisError:
    return RedisError("the counters' Redis client is closing")


def _answer(call: _Call, *, value: Any = None, error: BaseException | None = None) -> None:
    if call.reply.done():
        return
    if error is not None:
        call.reply.set_exception(error)
    else:
        call.reply.set_result(value)

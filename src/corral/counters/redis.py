"""Counters shared by several gateways in Redis: one atomic Lua call per admission or settlement."""

from __future__ import annotations

import math
import uuid
from collections.abc import Awaitable, Sequence
from dataclasses import replace
from typing import Any, TypeVar

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from corral.counters import scripts
from corral.counters.buckets import (
    BudgetState,
    Failure,
    RateState,
    ScopeState,
    refused,
    windows,
)
from corral.counters.multiplex import ScriptMultiplexer
from corral.counters.pool import MeteredPool, PoolBusy, PoolStats
from corral.counters.port import (
    AdmissionRequest,
    Admitted,
    CountersBusy,
    CountersUnreachable,
    LimitName,
    Refused,
    Reservation,
    Spend,
)

_KEEP_MONTH_S = 40 * 86400
"""How long a month's budget counters outlive the month (for late settlements and reports)."""
_KEEP_S = 70 * 86400
"""Lifetime of a budget counter touched outside admission (a month and the next, and more)."""
_EXPIRED_BATCH = 1000
_LIMIT_NAMES: dict[bytes, LimitName] = {
    b"requests": "requests",
    b"tokens": "tokens",
    b"concurrent": "concurrent",
    b"budget": "budget",
}

T = TypeVar("T")


class RedisCounters:
    """The Counters port in Redis, shared by every gateway that uses the same ``prefix``.

    Admission is one ``EVALSHA`` that reads every limit of every scope, and takes them all only
    if all pass; settlement is one ``EVALSHA`` that deletes the reservation record and gives
    back the difference, so a retried settlement finds nothing and counts nothing twice. Under
    a burst, calls that queue behind ``lanes`` busy round trips share the next one
    (``ScriptMultiplexer``).
    A pool with no connection free in time raises ``CountersBusy``; any other Redis failure
    ``CountersUnreachable`` (``FailOpenCounters`` decides what either means for admission).
    """

    backend = "redis"

    def __init__(
        self,
        client: Redis,
        *,
        prefix: str = "corral",
        owns_client: bool = False,
        pool: PoolStats | None = None,
        lanes: int = 8,
        wait: float = 1.0,
    ) -> None:
        self._client = client
        self._mux = ScriptMultiplexer(client, lanes=lanes, wait=wait, stats=pool)
        self._owns_client = owns_client
        self.pool = pool
        """The connection pool's figures, when this object built the pool (for metrics)."""
        self._prefix = "{" + prefix + "}"
        self._keys = [f"{self._prefix}:res", f"{self._prefix}:exp"]
        self._reserve = client.register_script(scripts.RESERVE)
        self._settle = client.register_script(scripts.SETTLE)
        self._seed = client.register_script(scripts.SPEND)

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        prefix: str = "corral",
        timeout: float = 0.5,
        pool_size: int = 32,
        pool_wait: float = 1.0,
    ) -> RedisCounters:
        """Counters on a new client for ``url``: each call fails fast (``timeout``, one
        immediate retry), and waits up to ``pool_wait`` seconds for one of ``pool_size``
        connections (lanes of the multiplexer) when all are in use."""
        pool = MeteredPool.from_url(
            url,
            max_connections=pool_size,
            timeout=pool_wait,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 1),
        )
        client = Redis.from_pool(pool)
        return cls(
            client,
            prefix=prefix,
            owns_client=True,
            pool=pool.stats,
            lanes=pool_size,
            wait=pool_wait,
        )

    async def reserve(self, request: AdmissionRequest, now: float) -> Admitted | Refused:
        reservation = Reservation.of(request, uuid.uuid4().hex, self.backend, now)
        args: list[str | int] = [
            self._prefix,
            f"{now:.6f}",
            reservation.id,
            request.tokens,
            request.cost_micros,
            f"{reservation.expires_at:.6f}",
            request.period.key,
            f"{request.period.resets_at:.6f}",
            math.ceil(max(0.0, request.period.resets_at - now)) + _KEEP_MONTH_S,
            reservation.to_json(),
            len(request.scopes),
        ]
        for scope in request.scopes:
            limits = scope.limits
            budget = limits.budget_micros
            args += [scope.name, limits.rpm or 0, limits.tpm or 0, limits.max_concurrent or 0]
            args.append(-1 if budget is None else budget)
        reply = await self._call(self._mux.call(self._reserve, self._keys, args))
        states = _states(reply[4:], len(request.scopes))
        spends = tuple(Spend(s.budget.spent, s.budget.held) for s in states)
        if reply[0] == 1:
            requests, tokens = windows(request, states, now)
            return Admitted(reservation, requests, tokens, spends)
        wait = float(reply[3]) if reply[3] else None
        failure = Failure(int(reply[1]) - 1, _LIMIT_NAMES[bytes(reply[2])], wait)
        return replace(refused(request, failure, states, now), spends=spends)

    async def settle(
        self, reservation: Reservation, tokens: int, cost_micros: int, now: float
    ) -> bool:
        args: list[str | int] = [
            self._prefix,
            reservation.id,
            max(0, tokens),
            max(0, cost_micros),
            f"{now:.6f}",
        ]
        done = await self._call(self._mux.call(self._settle, self._keys, args))
        return bool(done)

    async def release(self, reservation: Reservation, now: float) -> bool:
        return await self.settle(reservation, 0, 0, now)

    async def expired_reservations(self, now: float) -> list[Reservation]:
        found = await self._call(
            self._client.zrangebyscore(self._keys[1], "-inf", now, start=0, num=_EXPIRED_BATCH)
        )
        ids = [member for member in found if isinstance(member, bytes | str)]
        if not ids:
            return []
        raws = await self._call(self._client.hmget(self._keys[0], ids))
        return [Reservation.from_json(raw, self.backend) for raw in raws if raw is not None]

    async def reconcile(self, now: float) -> list[Reservation]:
        settled = []
        for reservation in await self.expired_reservations(now):
            if await self.settle(reservation, reservation.tokens, reservation.cost_micros, now):
                settled.append(reservation)
        return settled

    async def seed_spend(self, scope: str, period: str, spent_micros: int) -> None:
        key = self._budget_key(scope, period)
        await self._call(self._seed(keys=[key], args=["max", spent_micros, _KEEP_S]))

    async def add_spend(self, scope: str, period: str, micros: int) -> None:
        key = self._budget_key(scope, period)
        await self._call(self._seed(keys=[key], args=["add", micros, _KEEP_S]))

    async def spend(self, scope: str, period: str) -> Spend:
        spent, held = await self._call(
            self._client.hmget(self._budget_key(scope, period), ["spent", "held"])
        )
        return Spend(spent_micros=int(spent or 0), held_micros=int(held or 0))

    async def ping(self) -> None:
        """Raise TemporaryError unless Redis answers."""
        await self._call(self._client.ping())

    async def aclose(self) -> None:
        await self._mux.aclose()
        if self._owns_client:
            await self._client.aclose()

    def _budget_key(self, scope: str, period: str) -> str:
        return f"{self._prefix}:b:{scope}:{period}"

    async def _call(self, pending: Awaitable[T]) -> T:
        try:
            return await pending
        except PoolBusy as exc:
            raise CountersBusy(
                f"The shared counters are busy: {exc}; retry shortly.", delay=1.0
            ) from exc
        except RedisError as exc:
            raise CountersUnreachable(
                f"The shared counters in Redis cannot be used ({type(exc).__name__}); "
                "check that Redis is running and reachable from the gateway.",
                delay=1.0,
            ) from exc


def _states(flat: Sequence[Any], count: int) -> list[ScopeState]:
    """Scope states from the script's reply: rtat, ttat, in_flight, spent, held per scope."""
    states = []
    for i in range(count):
        rtat, ttat, in_flight, spent, held = flat[i * 5 : i * 5 + 5]
        states.append(
            ScopeState(
                rate=RateState(float(rtat), float(ttat), int(in_flight)),
                budget=BudgetState(int(spent), int(held)),
            )
        )
    return states

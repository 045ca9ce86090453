"""Capacity gate for one model: requests past its in-flight capacity wait their fair turn."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from corral.clock import Clock
from corral.gateway.policies.fair_queue import FairQueue


class AdmissionOutcome(StrEnum):
    """How a wait for capacity ended."""

    GO = "go"
    """A slot is held; call ``release`` when the request ends."""
    TIMED_OUT = "timed-out"
    """No slot within the wait cap (map to 503 with Retry-After)."""
    QUEUE_FULL = "queue-full"
    """The queue is full and this team queues the most (map to 429 with Retry-After)."""


@dataclass(frozen=True, slots=True)
class Admission:
    """The decision for one request, with how long it waited."""

    outcome: AdmissionOutcome
    waited_s: float = 0.0
    retry_after_s: int = 0

    @property
    def admitted(self) -> bool:
        """True when the request holds a slot."""
        return self.outcome is AdmissionOutcome.GO


_Waiter = asyncio.Future[AdmissionOutcome]


class AdmissionQueue:
    """At most ``capacity`` requests in flight; the rest queue by weighted fair queuing.

    ``capacity`` is the model's max in flight per endpoint × routable endpoints. A request that
    finds a free slot and nobody waiting goes at once; otherwise it waits (up to ``max_wait_s``)
    in a :class:`FairQueue` keyed by team, costed in tokens. The wait cap uses ``clock.sleep``
    so tests can drive it with a stepping clock.
    """

    def __init__(
        self,
        capacity: int,
        *,
        clock: Clock,
        weights: Mapping[str, float] | None = None,
        default_weight: float = 1.0,
        max_queued: int = 256,
        max_wait_s: float = 30.0,
    ) -> None:
        if capacity < 0:
            raise ValueError("capacity must be zero or more")
        self._capacity = capacity
        self._clock = clock
        self._queue: FairQueue[_Waiter] = FairQueue(dict(weights or {}), default_weight, max_queued)
        self._max_wait_s = max_wait_s
        self._retry_after_s = min(60, max(1, math.ceil(max_wait_s)))
        self._in_flight = 0

    @property
    def in_flight(self) -> int:
        """Requests holding a slot."""
        return self._in_flight

    @property
    def queued(self) -> int:
        """Requests waiting for one."""
        return len(self._queue)

    @property
    def capacity(self) -> int:
        """Slots in all."""
        return self._capacity

    def set_capacity(self, capacity: int) -> None:
        """Change the slot count (endpoints ejected, re-admitted, added); waiters may go."""
        self._capacity = max(0, capacity)
        self._dispatch()

    async def acquire(self, team: str, cost: float) -> Admission:
        """Wait for a slot for ``team``'s request of ``cost`` tokens."""
        if self._in_flight < self._capacity and not self._queue:
            self._in_flight += 1
            return Admission(AdmissionOutcome.GO)
        start = self._clock.monotonic()
        if self._max_wait_s <= 0:
            return Admission(AdmissionOutcome.TIMED_OUT, 0.0, self._retry_after_s)
        waiter: _Waiter = asyncio.get_running_loop().create_future()
        pushed = self._queue.push(team, cost, waiter, start, start + self._max_wait_s)
        for loser in pushed.evicted:
            _settle(loser, AdmissionOutcome.QUEUE_FULL)
        if not pushed.accepted or pushed.ticket is None:
            return Admission(AdmissionOutcome.QUEUE_FULL, 0.0, self._retry_after_s)
        outcome = await self._wait(waiter, pushed.ticket)
        waited = self._clock.monotonic() - start
        retry_after = 0 if outcome is AdmissionOutcome.GO else self._retry_after_s
        return Admission(outcome, waited, retry_after)

    def release(self) -> None:
        """A request that got GO has ended; the next waiter may go."""
        if self._in_flight <= 0:
            raise RuntimeError("release() without a matching GO")
        self._in_flight -= 1
        self._dispatch()

    async def _wait(self, waiter: _Waiter, ticket: int) -> AdmissionOutcome:
        timer = asyncio.ensure_future(self._clock.sleep(self._max_wait_s))
        try:
            await asyncio.wait((waiter, timer), return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            self._abandon(waiter, ticket)
            raise
        finally:
            timer.cancel()
        if waiter.done():
            return waiter.result()
        self._abandon(waiter, ticket)
        return AdmissionOutcome.TIMED_OUT

    def _abandon(self, waiter: _Waiter, ticket: int) -> None:
        """The waiter gives up: leave the queue, or hand back a slot granted meanwhile."""
        if waiter.done() and not waiter.cancelled() and waiter.result() is AdmissionOutcome.GO:
            self.release()
            return
        self._queue.cancel(ticket)
        waiter.cancel()

    def _dispatch(self) -> None:
        now = self._clock.monotonic()
        while self._in_flight < self._capacity and self._queue:
            popped = self._queue.pop(now)
            for late in popped.expired:
                _settle(late, AdmissionOutcome.TIMED_OUT)
            if popped.item is None:
                return
            if _settle(popped.item, AdmissionOutcome.GO):
                self._in_flight += 1


def _settle(waiter: _Waiter, outcome: AdmissionOutcome) -> bool:
    if waiter.done():
        return False
    waiter.set_result(outcome)
    return True

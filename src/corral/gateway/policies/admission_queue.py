"""Capacity gate for one model: requests past its in-flight capacity wait their fair turn."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from corral.clock import Clock
from corral.gateway.policies.fair_queue import FairQueue, Served, TokenDemand


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
    lease: int | None = None
    """On GO: report the request's tokens (``progress``) and its end (``release``) under it."""

    @property
    def admitted(self) -> bool:
        """True when the request holds a slot."""
        return self.outcome is AdmissionOutcome.GO


MAX_RETRY_AFTER_S = 60
"""Longest Retry-After the queue advises, however long the line."""

SERVICE_SMOOTHING = 0.1
"""Weight of the newest request in the running mean of how long a slot is held."""


def retry_after_s(ahead: int, capacity: int, service_s: float | None, fallback: int) -> int:
    """Whole seconds until a request with ``ahead`` others before it would start.

    Slots free at ``capacity / service_s`` a second, so the wait is (ahead + 1) × service_s /
    capacity, at least 1 and at most MAX_RETRY_AFTER_S. With no slot or no service time seen yet
    there is nothing to go on: ``fallback``.
    """
    if capacity <= 0 or service_s is None:
        return fallback
    wait = (ahead + 1) * service_s / capacity
    return min(MAX_RETRY_AFTER_S, max(1, math.ceil(wait)))


_Waiter = asyncio.Future[AdmissionOutcome]


class AdmissionQueue:
    """At most ``capacity`` requests in flight; the rest queue by weighted fair queuing.

    ``capacity`` is the model's max in flight per endpoint × routable endpoints. A request that
    finds a free slot and nobody waiting goes at once; otherwise it waits (up to ``max_wait_s``)
    in a :class:`FairQueue` keyed by team, which orders teams by the tokens they were actually
    served. The wait cap uses ``clock.sleep`` so tests can drive it with a stepping clock.
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
        self._fallback_retry_s = min(MAX_RETRY_AFTER_S, max(1, math.ceil(max_wait_s)))
        self._started: dict[int, float] = {}
        self._service_s: float | None = None

    @property
    def in_flight(self) -> int:
        """Requests holding a slot."""
        return len(self._started)

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

    def retry_after_s(self, team: str) -> int:
        """When ``team`` should try again: the expected wait for its next request now."""
        ahead = self._queue.requests_ahead(team)
        return retry_after_s(ahead, self._capacity, self._service_s, self._fallback_retry_s)

    async def acquire(self, team: str, demand: TokenDemand) -> Admission:
        """Wait for a slot for ``team``'s request of ``demand``."""
        if self.in_flight < self._capacity and not self._queue:
            return Admission(
                AdmissionOutcome.GO, lease=self._start(self._queue.admit(team, demand))
            )
        start = self._clock.monotonic()
        if self._max_wait_s <= 0:
            return Admission(AdmissionOutcome.TIMED_OUT, 0.0, self.retry_after_s(team))
        waiter: _Waiter = asyncio.get_running_loop().create_future()
        pushed = self._queue.push(team, demand, waiter, start, start + self._max_wait_s)
        for loser in pushed.evicted:
            _settle(loser, AdmissionOutcome.QUEUE_FULL)
        if not pushed.accepted or pushed.ticket is None:
            return Admission(AdmissionOutcome.QUEUE_FULL, 0.0, self.retry_after_s(team))
        outcome = await self._wait(waiter, pushed.ticket)
        waited = self._clock.monotonic() - start
        if outcome is AdmissionOutcome.GO:
            return Admission(outcome, waited, lease=pushed.ticket)
        return Admission(outcome, waited, self.retry_after_s(team))

    def progress(self, lease: int, completion_tokens: int) -> None:
        """The leased request has streamed ``completion_tokens`` so far."""
        self._queue.progress(lease, completion_tokens)

    def release(self, lease: int, served: Served | None = None) -> None:
        """A request that got GO has ended having received ``served`` (None: nothing at all);
        the next waiter may go."""
        started = self._started.pop(lease, None)
        if started is None:
            raise RuntimeError("release() without a matching GO")
        held = self._clock.monotonic() - started
        before = self._service_s
        self._service_s = held if before is None else before + SERVICE_SMOOTHING * (held - before)
        self._queue.finish(lease, served)
        self._dispatch()

    def _start(self, lease: int) -> int:
        self._started[lease] = self._clock.monotonic()
        return lease

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
            self._started.pop(ticket, None)
            self._queue.finish(ticket, None)  # it received nothing: no charge, no service time
            self._dispatch()
            return
        self._queue.cancel(ticket)
        waiter.cancel()

    def _dispatch(self) -> None:
        now = self._clock.monotonic()
        while self.in_flight < self._capacity and self._queue:
            popped = self._queue.pop(now)
            for late in popped.expired:
                _settle(late, AdmissionOutcome.TIMED_OUT)
            if popped.item is None or popped.lease is None:
                return
            if _settle(popped.item, AdmissionOutcome.GO):
                self._start(popped.lease)
            else:
                self._queue.finish(popped.lease, None)


def _settle(waiter: _Waiter, outcome: AdmissionOutcome) -> bool:
    if waiter.done():
        return False
    waiter.set_result(outcome)
    return True

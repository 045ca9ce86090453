"""Shared counters that fail open: when Redis is gone, keep admitting on per-process counters."""

from __future__ import annotations

import logging
import math
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable
from enum import StrEnum
from typing import TypeVar

from corral.counters.local import LocalCounters
from corral.counters.port import AdmissionRequest, Admitted, Counters, Refused, Reservation, Spend
from corral.errors import TemporaryError

log = logging.getLogger("corral.counters")

T = TypeVar("T")
_DRAIN_PER_CALL = 100
"""Deferred settlements replayed per call after recovery, so no single request waits long."""
LATE_WINDOW_S = 60.0
"""How long after giving up on a shared reserve its command may still run (a stalled link
delivers it when it heals) and leave a reservation this process must release."""
LATE_SCAN_EVERY_S = 1.0
"""Least time between two looks for such late reservations while any may still come."""


class CountersState(StrEnum):
    """Which counters admission is using (exported as a metric)."""

    SHARED = "shared"
    DEGRADED = "degraded"


class FailOpenCounters:
    """The Counters port over a shared backend, falling back to this process's counters.

    Documented fail-open: while the shared backend raises ``TemporaryError`` every limit is
    enforced per gateway process instead of across gateways (a fleet of N processes may admit
    up to N times a limit). The first failure logs one warning; the shared backend is retried
    every ``retry_interval`` seconds (by the next request) and its return logs once more.
    Settlements of shared reservations made while it is away are kept (bounded) and replayed on
    its return; spend settled locally is added to the shared budgets then. No exception from
    the shared backend escapes.
    """

    def __init__(
        self,
        shared: Counters,
        *,
        local: LocalCounters | None = None,
        retry_interval: float = 5.0,
        max_deferred: int = 10_000,
    ) -> None:
        self._shared = shared
        self._local = local if local is not None else LocalCounters()
        self._retry_interval = retry_interval
        self._deferred: deque[tuple[Reservation, int, int]] = deque()
        self._max_deferred = max_deferred
        self._unsynced: defaultdict[tuple[str, str], int] = defaultdict(int)
        self._next_try = 0.0
        self._gave_up: dict[str, float] = {}  # request id → until when its reserve may land
        self._next_scan = 0.0
        self._since: float | None = None
        self.state = CountersState.SHARED
        self.outages = 0
        """Times the shared backend was lost since start (for a counter metric)."""
        self.dropped_settlements = 0
        """Deferred settlements dropped because the queue was full (reconciled at expiry)."""
        self.late_released = 0
        """Shared reservations released because their reserve landed after this process had
        given up on it (the request was admitted, and settled, on local counters)."""

    async def reserve(self, request: AdmissionRequest, now: float) -> Admitted | Refused:
        if self._shared_allowed(now):
            decision = await self._try(lambda: self._shared.reserve(request, now), now)
            if decision is not None:
                return decision
            if request.request_id:  # the command may still run: look for it once Redis answers
                self._gave_up[request.request_id] = now + LATE_WINDOW_S
        return await self._local.reserve(request, now)

    async def settle(
        self, reservation: Reservation, tokens: int, cost_micros: int, now: float
    ) -> bool:
        if reservation.backend == self._local.backend:
            done = await self._local.settle(reservation, tokens, cost_micros, now)
            if done and cost_micros > 0:
                for taken in reservation.charges:
                    self._unsynced[(taken.name, reservation.period)] += cost_micros
            return done
        if self._shared_allowed(now):
            shared = await self._try(
                lambda: self._shared.settle(reservation, tokens, cost_micros, now), now
            )
            if shared is not None:
                return shared
        self._defer(reservation, tokens, cost_micros)
        return True

    async def release(self, reservation: Reservation, now: float) -> bool:
        return await self.settle(reservation, 0, 0, now)

    async def expired_reservations(self, now: float) -> list[Reservation]:
        found = await self._local.expired_reservations(now)
        if self._shared_allowed(now):
            shared = await self._try(lambda: self._shared.expired_reservations(now), now)
            found += shared or []
        return found

    async def reconcile(self, now: float) -> list[Reservation]:
        settled = await self._local.reconcile(now)
        if self._shared_allowed(now):
            shared = await self._try(lambda: self._shared.reconcile(now), now)
            settled += shared or []
        return settled

    async def seed_spend(self, scope: str, period: str, spent_micros: int) -> None:
        await self._local.seed_spend(scope, period, spent_micros)
        if self.state is CountersState.SHARED:
            await self._try(lambda: self._shared.seed_spend(scope, period, spent_micros), None)

    async def add_spend(self, scope: str, period: str, micros: int) -> None:
        await self._local.add_spend(scope, period, micros)
        if self.state is CountersState.SHARED:
            await self._try(lambda: self._shared.add_spend(scope, period, micros), None)

    async def spend(self, scope: str, period: str) -> Spend:
        if self.state is CountersState.SHARED:
            found = await self._try(lambda: self._shared.spend(scope, period), None)
            if found is not None:
                return found
        return await self._local.spend(scope, period)

    async def aclose(self) -> None:
        await self._shared.aclose()
        await self._local.aclose()

    @property
    def degraded_since(self) -> float | None:
        """When the current outage began (epoch seconds), or None while shared."""
        return self._since

    def _shared_allowed(self, now: float) -> bool:
        return self.state is CountersState.SHARED or now >= self._next_try

    async def _try(self, call: Callable[[], Awaitable[T]], now: float | None) -> T | None:
        """``call()`` on the shared backend; None (and degraded) when it is unreachable."""
        try:
            result = await call()
        except TemporaryError as exc:
            self._degrade(exc, now)
            return None
        if now is not None:
            if self.state is CountersState.DEGRADED:
                self._recover(now)
            if self._deferred or self._unsynced:
                await self._drain(now)
            if self._gave_up and now >= self._next_scan:
                await self._release_late(now)
        return result

    def _degrade(self, exc: TemporaryError, now: float | None) -> None:
        if now is not None:
            self._next_try = now + self._retry_interval
        if self.state is CountersState.DEGRADED:
            return
        self.state = CountersState.DEGRADED
        self._since = now
        self.outages += 1
        log.warning(
            "Shared counters unavailable: %s Admitting on per-process counters: rate limits, "
            "concurrency and budgets now apply to each gateway process separately until Redis "
            "returns (retrying every %.0fs).",
            exc.message,
            self._retry_interval,
        )

    def _recover(self, now: float) -> None:
        self.state = CountersState.SHARED
        lasted = now - self._since if self._since is not None else 0.0
        self._since = None
        log.warning(
            "Shared counters are back after %.0fs; limits are shared across gateways again.",
            lasted,
        )

    def _defer(self, reservation: Reservation, tokens: int, cost_micros: int) -> None:
        if len(self._deferred) >= self._max_deferred:
            self.dropped_settlements += 1
            log.error(
                "Deferred settlement queue full (%d): reservation %s will be settled at its "
                "reserved size when it expires.",
                self._max_deferred,
                reservation.id,
            )
            return
        self._deferred.append((reservation, tokens, cost_micros))

    async def _release_late(self, now: float) -> None:
        """Release shared reservations whose reserve this process gave up on (it admitted those
        requests locally), as soon as the shared backend answers, not when they expire."""
        self._next_scan = now + LATE_SCAN_EVERY_S
        try:
            held = await self._shared.expired_reservations(math.inf)
            for reservation in held:
                if self._gave_up.pop(reservation.request_id, None) is None:
                    continue
                if await self._shared.release(reservation, now):
                    self.late_released += 1
                    log.warning(
                        "Released a reservation of request %s that reached Redis after this "
                        "process had stopped waiting for it (admitted on local counters).",
                        reservation.request_id,
                    )
        except TemporaryError as exc:
            self._degrade(exc, now)
            return
        self._gave_up = {rid: until for rid, until in self._gave_up.items() if until > now}

    async def _drain(self, now: float) -> None:
        """Replay some deferred settlements and push spend settled locally to the shared side."""
        for _ in range(min(_DRAIN_PER_CALL, len(self._deferred))):
            reservation, tokens, cost = self._deferred.popleft()
            try:
                await self._shared.settle(reservation, tokens, cost, now)
            except TemporaryError as exc:
                self._deferred.appendleft((reservation, tokens, cost))
                self._degrade(exc, now)
                return
        while self._unsynced:
            # Taken out before the await: requests drain concurrently, and each amount must be
            # pushed once (another request may add to the same scope meanwhile).
            (scope, period), micros = self._unsynced.popitem()
            try:
                await self._shared.add_spend(scope, period, micros)
            except TemporaryError as exc:
                self._unsynced[(scope, period)] += micros
                self._degrade(exc, now)
                return

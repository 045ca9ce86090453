"""Shared counters that fail open for rate limits, never for money, and only when Redis is down.

What admission does with the shared counters (Redis), per situation and limit kind:

* **Redis busy** (every pooled connection stayed in use for the pool's wait): 503 with
  Retry-After, every limit kind; this is back-pressure and never counts toward an outage.
* **A failed call while Redis counts as up** (see ``corral.counters.outage``): a request with
  a budget gets 503, since the other gateways may still be counting on Redis; one without a
  budget is admitted on this process's counters.
* **Redis down**: rate limits and concurrency apply per process (a fleet of N processes may
  admit up to N times a limit); a budget follows ``budgets``: ``share`` admits only this
  process's share of what was left (``corral.counters.shares``) and answers 503 beyond it,
  ``refuse`` answers 503 to every budgeted request, ``open`` counts it per process.

On the way back, settlements of shared reservations made while Redis was away are replayed
(bounded) and spend settled on this process's counters is added to the shared budgets.
"""

from __future__ import annotations

import logging
import math
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable
from typing import TypeVar

from corral.counters.local import LocalCounters
from corral.counters.outage import (
    CountersState,
    Health,
    OutagePolicy,
    after_failure,
    after_success,
    may_call,
    probing,
)
from corral.counters.port import (
    AdmissionRequest,
    Admitted,
    Counters,
    CountersBusy,
    CountersUnreachable,
    Refused,
    Reservation,
    Spend,
)
from corral.counters.shares import BudgetOutageMode, OutageShares
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
_BUDGETS_WHILE_DOWN: dict[BudgetOutageMode, str] = {
    "share": "each process admits only its share of what was left of a budget (503 beyond it)",
    "refuse": "requests with a budget get 503",
    "open": "budgets apply per process too (the fleet may overspend them)",
}


class FailOpenCounters:
    """The Counters port over a shared backend, falling back to this process's counters.

    One warning is logged, and ``transitions`` counted, each time Redis is declared down and
    each time it is back. ``TemporaryError`` escapes ``reserve`` only as the 503s above.
    """

    def __init__(
        self,
        shared: Counters,
        *,
        local: LocalCounters | None = None,
        policy: OutagePolicy | None = None,
        budgets: BudgetOutageMode = "share",
        processes: int = 1,
        max_deferred: int = 10_000,
    ) -> None:
        self._shared = shared
        self._local = local if local is not None else LocalCounters()
        self._policy = policy if policy is not None else OutagePolicy()
        self._budgets: BudgetOutageMode = budgets
        self.shares = OutageShares(processes)
        self._health = Health()
        self._deferred: deque[tuple[Reservation, int, int]] = deque()
        self._max_deferred = max_deferred
        self._unsynced: defaultdict[tuple[str, str], int] = defaultdict(int)
        """Spend counted here that Redis has not seen yet, per (scope, period)."""
        self._held_locally: dict[str, Reservation] = {}
        """Costly reservations admitted here whose hold Redis has not seen: pushed to it as
        spend at its first answer, corrected when they settle."""
        self._pushed: set[str] = set()
        self.transitions: dict[CountersState, int] = dict.fromkeys(CountersState, 0)
        """Times the counters went to each state since start (a counter metric)."""
        self.refusals: dict[str, int] = {"busy": 0, "failing": 0, "outage_budget": 0}
        """503s by cause: pool busy, a failed call while up, a budget while down."""
        self.dropped_settlements = 0
        """Deferred settlements dropped because the queue was full (reconciled at expiry)."""
        self._gave_up: dict[str, float] = {}  # request id → until when its reserve may land
        self._next_scan = 0.0
        self.late_released = 0
        """Shared reservations released because their reserve landed after this process had
        given up on it (the request was admitted, or refused, without it)."""

    @property
    def state(self) -> CountersState:
        return self._health.state

    @property
    def degraded_since(self) -> float | None:
        """When the current outage began (epoch seconds), or None while shared."""
        return self._health.since

    @property
    def outages(self) -> int:
        """Times Redis was declared down since start."""
        return self.transitions[CountersState.DEGRADED]

    async def reserve(self, request: AdmissionRequest, now: float) -> Admitted | Refused:
        if may_call(self._health, now):
            self._health = probing(self._health, self._policy, now)
            try:
                decision = await self._shared.reserve(request, now)
            except CountersBusy:
                self.refusals["busy"] += 1
                raise
            except TemporaryError as exc:
                self._failed(exc, now)
                if request.request_id:  # the command may still run: look for it when Redis answers
                    self._gave_up[request.request_id] = now + LATE_WINDOW_S
                if self.state is CountersState.SHARED:
                    return await self._reserve_unsure(request, now, exc)
            else:
                self.shares.observe(request, decision.spends)
                await self._succeeded(now)
                return decision
        return await self._reserve_while_down(request, now)

    async def settle(
        self, reservation: Reservation, tokens: int, cost_micros: int, now: float
    ) -> bool:
        if reservation.backend == self._local.backend:
            done = await self._local.settle(reservation, tokens, cost_micros, now)
            if done:
                self.shares.settle(reservation, cost_micros)
                self._sync_later(reservation, max(0, cost_micros))
            return done
        settled = await self._shared_call(
            lambda: self._shared.settle(reservation, tokens, cost_micros, now), now
        )
        if settled is None:
            self._defer(reservation, tokens, cost_micros)
            return True
        return settled

    async def release(self, reservation: Reservation, now: float) -> bool:
        return await self.settle(reservation, 0, 0, now)

    async def expired_reservations(self, now: float) -> list[Reservation]:
        found = await self._local.expired_reservations(now)
        shared = await self._shared_call(lambda: self._shared.expired_reservations(now), now)
        return found + (shared or [])

    async def reconcile(self, now: float) -> list[Reservation]:
        settled = await self._local.reconcile(now)
        for reservation in settled:  # settled at their reserved size: Redis is owed that
            self.shares.settle(reservation, reservation.cost_micros)
            self._sync_later(reservation, reservation.cost_micros)
        shared = await self._shared_call(lambda: self._shared.reconcile(now), now)
        return settled + (shared or [])

    async def seed_spend(self, scope: str, period: str, spent_micros: int) -> None:
        self.shares.observe_ledger(scope, period, spent_micros)
        await self._local.seed_spend(scope, period, spent_micros)
        if self.state is CountersState.SHARED:
            await self._best_effort(lambda: self._shared.seed_spend(scope, period, spent_micros))

    async def add_spend(self, scope: str, period: str, micros: int) -> None:
        await self._local.add_spend(scope, period, micros)
        if self.state is CountersState.SHARED:
            await self._best_effort(lambda: self._shared.add_spend(scope, period, micros))

    async def spend(self, scope: str, period: str) -> Spend:
        if self.state is CountersState.SHARED:
            found = await self._best_effort(lambda: self._shared.spend(scope, period))
            if found is not None:
                return found
        return await self._local.spend(scope, period)

    async def aclose(self) -> None:
        await self._shared.aclose()
        await self._local.aclose()

    def _budgeted(self, request: AdmissionRequest) -> bool:
        """Whether money is at stake: a budget on some scope and a cost to count against it."""
        return (
            self._budgets != "open"
            and request.cost_micros > 0
            and any(s.limits.budget_micros is not None for s in request.scopes)
        )

    async def _reserve_unsure(
        self, request: AdmissionRequest, now: float, exc: TemporaryError
    ) -> Admitted | Refused:
        """A call failed but Redis still counts as up: the other gateways may be counting there,
        so a budget cannot be checked here; rate limits may be, per process."""
        if self._budgeted(request):
            self.refusals["failing"] += 1
            raise CountersUnreachable(
                f"{exc.message} This request has a budget, which only the shared counters can "
                "check; retry shortly.",
                delay=1.0,
            ) from exc
        return await self._reserve_here(request, now)

    async def _reserve_while_down(
        self, request: AdmissionRequest, now: float
    ) -> Admitted | Refused:
        if not self._budgeted(request):
            return await self._reserve_here(request, now)
        if self._budgets == "refuse":
            self.refusals["outage_budget"] += 1
            raise CountersUnreachable(
                "The shared budget counters (Redis) are down and this gateway admits no request "
                "with a budget without them (limits.budgets_on_redis_outage: refuse); retry "
                "later.",
                delay=5.0,
            )
        short = self.shares.short(request)
        if short is not None:
            self.refusals["outage_budget"] += 1
            raise CountersUnreachable(
                f"The shared budget counters (Redis) are down and this gateway has admitted its "
                f"share of what was left of {short.kind} {short.id!r}'s budget; retry when they "
                "are back.",
                delay=5.0,
            )
        decision = await self._reserve_here(request, now)
        if isinstance(decision, Admitted):
            self.shares.take(request, decision.reservation)
        return decision

    async def _reserve_here(self, request: AdmissionRequest, now: float) -> Admitted | Refused:
        """Admit on this process's counters, remembering the hold Redis will be owed."""
        decision = await self._local.reserve(request, now)
        if isinstance(decision, Admitted) and request.cost_micros > 0:
            self._held_locally[decision.reservation.id] = decision.reservation
        return decision

    async def _shared_call(self, call: Callable[[], Awaitable[T]], now: float) -> T | None:
        """``call()`` on the shared backend when it may be called; None when not or failed."""
        if not may_call(self._health, now):
            return None
        self._health = probing(self._health, self._policy, now)
        try:
            result = await call()
        except CountersBusy:
            return None
        except TemporaryError as exc:
            self._failed(exc, now)
            return None
        await self._succeeded(now)
        return result

    async def _best_effort(self, call: Callable[[], Awaitable[T]]) -> T | None:
        """A background call (ledger seeding, reports): a failure leaves the health as it is."""
        try:
            return await call()
        except TemporaryError:
            return None

    def _failed(self, exc: TemporaryError, now: float) -> None:
        before = self._health.state
        self._health = after_failure(self._health, self._policy, now)
        if before is CountersState.SHARED and self.state is CountersState.DEGRADED:
            self.transitions[CountersState.DEGRADED] += 1
            log.warning(
                "Shared counters unavailable: %s Redis counts as down after %d failed calls "
                "over %.1fs. Until it answers again (tried every %.0fs): rate limits and "
                "concurrency apply to each gateway process separately; %s.",
                exc.message,
                self._health.failures,
                now - (self._health.failing_since or now),
                self._policy.probe_every,
                _BUDGETS_WHILE_DOWN[self._budgets],
            )

    async def _succeeded(self, now: float) -> None:
        before, since = self._health.state, self._health.since
        self._health = after_success(self._health, self._policy, now)
        if before is CountersState.DEGRADED and self.state is CountersState.SHARED:
            self.transitions[CountersState.SHARED] += 1
            self.shares.end_outage()
            log.warning(
                "Shared counters are back after %.0fs; limits are shared across gateways again.",
                now - (since if since is not None else now),
            )
        if self._held_locally:
            self._push_holds()
        if self._deferred or self._unsynced:
            await self._drain(now)
        if self._gave_up and now >= self._next_scan:
            await self._release_late(now)

    async def _release_late(self, now: float) -> None:
        """Release shared reservations whose reserve this process gave up on (it decided those
        requests without them), as soon as the shared backend answers, not when they expire."""
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
                        "process had stopped waiting for it.",
                        reservation.request_id,
                    )
        except TemporaryError as exc:
            self._failed(exc, now)
            return
        self._gave_up = {rid: until for rid, until in self._gave_up.items() if until > now}

    def _sync_later(self, reservation: Reservation, cost_micros: int) -> None:
        """Owe Redis a settled local reservation's cost (less its hold, if already pushed)."""
        self._held_locally.pop(reservation.id, None)
        owed = cost_micros
        if reservation.id in self._pushed:
            self._pushed.discard(reservation.id)
            owed -= reservation.cost_micros
        if owed:
            for taken in reservation.charges:
                self._unsynced[(taken.name, reservation.period)] += owed

    def _push_holds(self) -> None:
        """Owe Redis the holds of local reservations still in flight, at their reserved size,
        so the fleet counts them from Redis's first answer on rather than once they settle."""
        for reservation in self._held_locally.values():
            for taken in reservation.charges:
                self._unsynced[(taken.name, reservation.period)] += reservation.cost_micros
            self._pushed.add(reservation.id)
        self._held_locally.clear()

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

    async def _drain(self, now: float) -> None:
        """Replay some deferred settlements and push spend settled locally to the shared side.

        Each item leaves its queue before the await, so concurrent drains never take one twice.
        """
        for _ in range(min(_DRAIN_PER_CALL, len(self._deferred))):
            if not self._deferred:
                return
            reservation, tokens, cost = self._deferred.popleft()
            try:
                await self._shared.settle(reservation, tokens, cost, now)
            except TemporaryError:
                self._deferred.appendleft((reservation, tokens, cost))
                return
        while self._unsynced:
            (scope, period), micros = self._unsynced.popitem()
            try:
                await self._shared.add_spend(scope, period, micros)
            except TemporaryError:
                self._unsynced[(scope, period)] += micros
                return

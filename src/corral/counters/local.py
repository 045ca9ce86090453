"""In-process counters for one gateway process: exact, atomic because no call ever awaits."""

from __future__ import annotations

import os

from corral.counters.buckets import (
    BudgetState,
    RateState,
    ScopeState,
    charge,
    check,
    refused,
    settle_scope,
    windows,
)
from corral.counters.port import (
    AdmissionRequest,
    Admitted,
    Refused,
    Reservation,
    Spend,
)


class LocalCounters:
    """The Counters port in this process's memory.

    Every method runs to completion without an ``await``, so under asyncio each is atomic with
    no lock. Limits apply per process: with several gateway processes, use ``RedisCounters``.
    State is lost on restart; ``seed_spend`` restores the month's spend from the usage ledger.
    """

    backend = "local"

    def __init__(self) -> None:
        self._rates: dict[str, RateState] = {}
        self._budgets: dict[tuple[str, str], BudgetState] = {}
        self._open: dict[str, Reservation] = {}

    async def reserve(self, request: AdmissionRequest, now: float) -> Admitted | Refused:
        states = [self._state(s.name, request.period.key) for s in request.scopes]
        failure = check(request, states, now)
        if failure is not None:
            return refused(request, failure, states, now)
        charge(request, states, now)
        reservation = Reservation.of(request, os.urandom(16).hex(), self.backend, now)
        self._open[reservation.id] = reservation
        requests, tokens = windows(request, states, now)
        return Admitted(reservation=reservation, requests=requests, tokens=tokens)

    async def settle(
        self, reservation: Reservation, tokens: int, cost_micros: int, now: float
    ) -> bool:
        held = self._open.pop(reservation.id, None)
        if held is None:
            return False
        used = (held.tokens, max(0, tokens))
        cost = (held.cost_micros, max(0, cost_micros))
        for taken in held.charges:
            settle_scope(self._state(taken.name, held.period), taken, used, cost, now)
        return True

    async def release(self, reservation: Reservation, now: float) -> bool:
        return await self.settle(reservation, 0, 0, now)

    async def expired_reservations(self, now: float) -> list[Reservation]:
        return [r for r in self._open.values() if r.expires_at <= now]

    async def reconcile(self, now: float) -> list[Reservation]:
        expired = await self.expired_reservations(now)
        for reservation in expired:
            await self.settle(reservation, reservation.tokens, reservation.cost_micros, now)
        self._forget_idle(now)
        return expired

    async def seed_spend(self, scope: str, period: str, spent_micros: int) -> None:
        budget = self._budgets.setdefault((scope, period), BudgetState())
        budget.spent = max(budget.spent, spent_micros)

    async def add_spend(self, scope: str, period: str, micros: int) -> None:
        self._budgets.setdefault((scope, period), BudgetState()).spent += micros

    async def spend(self, scope: str, period: str) -> Spend:
        budget = self._budgets.get((scope, period), BudgetState())
        return Spend(spent_micros=budget.spent, held_micros=budget.held)

    async def aclose(self) -> None:
        return None

    def _state(self, scope: str, period: str) -> ScopeState:
        rate = self._rates.get(scope)
        if rate is None:
            rate = self._rates[scope] = RateState()
        budget = self._budgets.get((scope, period))
        if budget is None:
            budget = self._budgets[(scope, period)] = BudgetState()
        return ScopeState(rate=rate, budget=budget)

    def _forget_idle(self, now: float) -> None:
        """Drop rate state that is indistinguishable from none (full buckets, nothing in flight)."""
        idle = [
            name
            for name, rate in self._rates.items()
            if rate.in_flight == 0 and rate.requests_tat <= now and rate.tokens_tat <= now
        ]
        for name in idle:
            del self._rates[name]

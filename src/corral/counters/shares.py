"""Budgets while Redis is down: each gateway process may commit only its share of what was left.

Every process sees the same outage, and none can see what the others admit. If each commits at
most ``remaining ÷ processes`` of a budget — remaining as the freshest figure it has: the last
Redis answer for that scope, raised to the ledger's month spend (re-read every 30 s) — together
they commit at most what was left. A scope never seen counts the ledger's figure (0 when it had
no spend then). The share is taken at the scope's first request of the outage and kept for it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from corral.counters.port import AdmissionRequest, Reservation, Scope, Spend

BudgetOutageMode = Literal["share", "refuse", "open"]
"""What a budget does while Redis is down: each process admits against its share of what was
left (``share``), budgeted requests get 503 (``refuse``), or each process admits against the
whole budget on its own counters (``open``: availability over the budget, may overspend)."""

_MAX_KNOWN = 200_000
"""Scopes remembered at most (keys and teams); beyond, the oldest figures are forgotten."""


@dataclass(frozen=True, slots=True)
class KnownSpend:
    """The freshest month figures of one scope: settled spend and holds, in micro-dollars."""

    spent: int
    held: int


def outage_share(budget: int, known: KnownSpend | None, processes: int) -> int:
    """Micro-dollars one of ``processes`` may commit while Redis is down: what was left of
    ``budget`` as last known, divided evenly and rounded down."""
    spent, held = (known.spent, known.held) if known is not None else (0, 0)
    return max(0, budget - spent - held) // max(1, processes)


class OutageShares:
    """Each budgeted scope's share in the current outage and what this process used of it."""

    def __init__(self, processes: int) -> None:
        self.processes = processes
        self._known: dict[tuple[str, str], KnownSpend] = {}
        self._granted: dict[tuple[str, str], int] = {}
        self._used: dict[tuple[str, str], int] = {}
        self._open: dict[str, int] = {}
        """Reservations admitted in this outage: their reserved cost."""

    def observe(self, request: AdmissionRequest, spends: Iterable[Spend]) -> None:
        """Remember the figures Redis answered for each of ``request``'s scopes."""
        for scope, spend in zip(request.scopes, spends, strict=False):
            if scope.limits.budget_micros is not None:
                self._remember(
                    (scope.name, request.period.key),
                    KnownSpend(spend.spent_micros, spend.held_micros),
                )

    def observe_ledger(self, scope: str, period: str, spent: int) -> None:
        """Raise a scope's known spend to the ledger's figure for the month."""
        key = (scope, period)
        known = self._known.get(key)
        if known is None or known.spent < spent:
            self._remember(key, KnownSpend(spent, known.held if known is not None else 0))

    def short(self, request: AdmissionRequest) -> Scope | None:
        """The first budgeted scope whose share ``request`` would exceed, or None."""
        for scope in request.scopes:
            budget = scope.limits.budget_micros
            if budget is None:
                continue
            key = (scope.name, request.period.key)
            granted = self._granted.get(key)
            if granted is None:
                granted = outage_share(budget, self._known.get(key), self.processes)
                self._granted[key] = granted
            if self._used.get(key, 0) + request.cost_micros > granted:
                return scope
        return None

    def take(self, request: AdmissionRequest, reservation: Reservation) -> None:
        """Count an admitted request against its scopes' shares (after ``short`` found room)."""
        for scope in request.scopes:
            if scope.limits.budget_micros is not None:
                key = (scope.name, request.period.key)
                self._used[key] = self._used.get(key, 0) + request.cost_micros
        self._open[reservation.id] = request.cost_micros

    def settle(self, reservation: Reservation, cost_micros: int) -> None:
        """Swap a reservation's hold for its actual cost (no-op if from another outage)."""
        reserved = self._open.pop(reservation.id, None)
        if reserved is None:
            return
        for charge in reservation.charges:
            key = (charge.name, reservation.period)
            if key in self._used:
                self._used[key] += max(0, cost_micros) - reserved

    def used(self, scope: str, period: str) -> int:
        """Micro-dollars this process committed for ``scope`` in this outage."""
        return self._used.get((scope, period), 0)

    def end_outage(self) -> None:
        """Redis is back: forget the shares, so the next outage starts from fresh figures."""
        self._granted.clear()
        self._used.clear()
        self._open.clear()

    def _remember(self, key: tuple[str, str], known: KnownSpend) -> None:
        if key not in self._known and len(self._known) >= _MAX_KNOWN:
            del self._known[next(iter(self._known))]
        self._known[key] = known

"""Weighted fair queuing across teams: start-time fair queuing over token costs."""

from __future__ import annotations

import heapq
import itertools
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Generic, TypeVar

T = TypeVar("T")


class RejectReason(StrEnum):
    """Why a push was refused or an item left the queue unserved."""

    QUEUE_FULL = "queue-full"
    """The queue is at its bound and the pushing team holds the largest weighted backlog."""
    EVICTED = "evicted"
    """Pushed out by a lighter team's request when the queue was full."""
    EXPIRED = "expired"
    """Its deadline passed while it waited."""


@dataclass(frozen=True, slots=True)
class Pushed(Generic[T]):
    """The result of a push: accepted with a ticket, or rejected; and any items pushed out."""

    accepted: bool
    ticket: int | None = None
    reason: RejectReason | None = None
    evicted: tuple[T, ...] = ()


@dataclass(frozen=True, slots=True)
class Popped(Generic[T]):
    """The next item to serve (None when nothing is waiting) and items dropped as expired."""

    item: T | None
    team: str | None = None
    waited_s: float = 0.0
    expired: tuple[T, ...] = ()


@dataclass(slots=True)
class _Entry(Generic[T]):
    ticket: int
    team: str
    start: float
    cost: float
    item: T
    enqueued_at: float
    deadline: float | None
    alive: bool = True


@dataclass(slots=True)
class FairQueue(Generic[T]):
    """Start-time fair queuing: items carry virtual start tags and are served smallest first.

    A team's next item starts at max(virtual time, the team's last finish tag) and finishes
    cost/weight later; virtual time is the start tag of the item served last. So a team that
    floods only lengthens its own line, an idle team gets no stored credit, and under load each
    team receives tokens in proportion to its weight. When the queue is full, the team with the
    largest weighted backlog loses its newest item to make room (or its push is refused).
    """

    weights: Mapping[str, float] = field(default_factory=dict)
    default_weight: float = 1.0
    max_items: int = 1024
    _queues: dict[str, deque[_Entry[T]]] = field(init=False, default_factory=dict)
    _finish: dict[str, float] = field(init=False, default_factory=dict)
    _backlog: dict[str, float] = field(init=False, default_factory=dict)
    _tickets: dict[int, _Entry[T]] = field(init=False, default_factory=dict)
    _heads: list[tuple[float, int, str]] = field(init=False, default_factory=list)
    _counter: itertools.count[int] = field(init=False, default_factory=itertools.count)
    _virtual: float = field(init=False, default=0.0)

    def __post_init__(self) -> None:
        if self.max_items < 1:
            raise ValueError("max_items must be at least 1")
        if self.default_weight <= 0 or any(w <= 0 for w in self.weights.values()):
            raise ValueError("team weights must be positive")

    def __len__(self) -> int:
        return len(self._tickets)

    def weight(self, team: str) -> float:
        """The team's configured weight, or the default."""
        return self.weights.get(team, self.default_weight)

    def backlog(self, team: str) -> float:
        """Queued cost (tokens) of ``team``."""
        return self._backlog.get(team, 0.0)

    def push(
        self, team: str, cost: float, item: T, now: float, deadline: float | None = None
    ) -> Pushed[T]:
        """Queue ``item`` for ``team`` at ``cost`` tokens; it expires at ``deadline`` if given."""
        if cost <= 0:
            raise ValueError("cost must be positive")
        evicted: tuple[T, ...] = ()
        if len(self) >= self.max_items:
            victim = self._heaviest(team, cost)
            if victim == team:
                return Pushed(False, reason=RejectReason.QUEUE_FULL)
            evicted = (self._evict_newest(victim),)
        start = max(self._virtual, self._finish.get(team, 0.0))
        entry = _Entry(next(self._counter), team, start, cost, item, now, deadline)
        self._finish[team] = start + cost / self.weight(team)
        self._backlog[team] = self.backlog(team) + cost
        self._tickets[entry.ticket] = entry
        queue = self._queues.setdefault(team, deque())
        queue.append(entry)
        if len(queue) == 1:
            heapq.heappush(self._heads, (start, entry.ticket, team))
        return Pushed(True, ticket=entry.ticket, evicted=evicted)

    def pop(self, now: float) -> Popped[T]:
        """The next item to serve; items past their deadline are dropped and reported."""
        expired: list[T] = []
        while self._heads:
            _, ticket, team = heapq.heappop(self._heads)
            queue = self._queues.get(team)
            if not queue or queue[0].ticket != ticket:
                continue  # a head that was cancelled or evicted since
            entry = queue.popleft()
            self._forget(entry)
            self._reseat_head(team)
            if entry.deadline is not None and entry.deadline <= now:
                expired.append(entry.item)
                continue
            self._virtual = max(self._virtual, entry.start)
            return Popped(entry.item, team, now - entry.enqueued_at, tuple(expired))
        return Popped(None, expired=tuple(expired))

    def cancel(self, ticket: int) -> bool:
        """Withdraw a queued item (its waiter gave up); False when it is no longer queued."""
        entry = self._tickets.get(ticket)
        if entry is None:
            return False
        was_head = self._queues[entry.team][0] is entry
        self._forget(entry)
        self._settle_tail(entry.team)
        if was_head and entry.team in self._queues:
            self._reseat_head(entry.team)
        return True

    def expire(self, now: float) -> tuple[T, ...]:
        """Drop every item whose deadline has passed, wherever it waits; returns them."""
        due = [e for e in self._tickets.values() if e.deadline is not None and e.deadline <= now]
        for entry in due:
            self.cancel(entry.ticket)
        return tuple(e.item for e in due)

    def _heaviest(self, team: str, cost: float) -> str:
        def weighted(name: str) -> float:
            extra = cost if name == team else 0.0
            return (self.backlog(name) + extra) / self.weight(name)

        return max([team, *self._queues], key=weighted)

    def _evict_newest(self, team: str) -> T:
        entry = self._queues[team][-1]  # tails are always alive (see _settle_tail)
        self._forget(entry)
        self._settle_tail(team)
        return entry.item

    def _forget(self, entry: _Entry[T]) -> None:
        entry.alive = False
        del self._tickets[entry.ticket]
        self._backlog[entry.team] -= entry.cost

    def _reseat_head(self, team: str) -> None:
        """Drop withdrawn items at the head and put the new head on the heap."""
        queue = self._queues[team]
        while queue and not queue[0].alive:
            queue.popleft()
        if queue:
            heapq.heappush(self._heads, (queue[0].start, queue[0].ticket, team))
        else:
            del self._queues[team]

    def _settle_tail(self, team: str) -> None:
        """Drop withdrawn items at the tail; the team no longer owes their tokens."""
        queue = self._queues[team]
        rollback: float | None = None
        while queue and not queue[-1].alive:
            rollback = queue.pop().start
        if rollback is not None:
            self._finish[team] = rollback
        if not queue:
            del self._queues[team]

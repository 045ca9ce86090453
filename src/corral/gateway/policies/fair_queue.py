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
    """Why a push was refused."""

    QUEUE_FULL = "queue-full"
    """The queue is at its bound and the pushing team holds the largest weighted backlog."""


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


@dataclass(slots=True, eq=False)
class _Entry(Generic[T]):
    ticket: int
    team: str
    floor: float
    """Virtual time when it was pushed: its start tag is never below this."""
    start: float
    cost: float
    item: T
    enqueued_at: float
    deadline: float | None


@dataclass(slots=True)
class FairQueue(Generic[T]):
    """Start-time fair queuing: items carry virtual start tags and are served smallest first.

    A team's next item starts at max(virtual time, the team's last finish tag) and finishes
    cost/weight later; virtual time is the start tag of the item served last. So a team that
    floods only lengthens its own line, an idle team gets no stored credit, and under load each
    team receives tokens in proportion to its weight. An item that leaves unserved (cancelled,
    expired, evicted) gives its place back: the team's later items move up as if it never came.
    When the queue is full, the team with the largest weighted backlog loses its newest item to
    make room, or its own push is refused.
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
            victim = self._heaviest(team)
            if victim == team:
                return Pushed(False, reason=RejectReason.QUEUE_FULL)
            newest = self._queues[victim][-1]
            self._withdraw(newest)
            evicted = (newest.item,)
        start = max(self._virtual, self._finish.get(team, 0.0))
        entry = _Entry(next(self._counter), team, self._virtual, start, cost, item, now, deadline)
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
            start, ticket, team = heapq.heappop(self._heads)
            queue = self._queues.get(team)
            if not queue or queue[0].ticket != ticket or queue[0].start != start:
                continue  # a head that left or was re-tagged since
            entry = queue[0]
            if entry.deadline is not None and entry.deadline <= now:
                self._withdraw(entry)
                expired.append(entry.item)
                continue
            queue.popleft()
            self._forget(entry)
            self._settle(team, head_changed=True)
            self._virtual = max(self._virtual, entry.start)
            return Popped(entry.item, team, now - entry.enqueued_at, tuple(expired))
        return Popped(None, expired=tuple(expired))

    def cancel(self, ticket: int) -> bool:
        """Withdraw a queued item (its waiter gave up); False when it is no longer queued."""
        entry = self._tickets.get(ticket)
        if entry is None:
            return False
        self._withdraw(entry)
        return True

    def expire(self, now: float) -> tuple[T, ...]:
        """Drop every item whose deadline has passed, wherever it waits; returns them."""
        due = [e for e in self._tickets.values() if e.deadline is not None and e.deadline <= now]
        for entry in due:
            self._withdraw(entry)
        return tuple(e.item for e in due)

    def _heaviest(self, team: str) -> str:
        """The team holding the most queued tokens per unit of weight; the pusher wins no ties."""
        return max([team, *self._queues], key=lambda name: self.backlog(name) / self.weight(name))

    def _forget(self, entry: _Entry[T]) -> None:
        del self._tickets[entry.ticket]
        self._backlog[entry.team] -= entry.cost

    def _withdraw(self, entry: _Entry[T]) -> None:
        """Remove an unserved item; the team's later items move up to fill its place."""
        queue = self._queues[entry.team]
        was_head = queue[0] is entry
        position = queue.index(entry)
        del queue[position]
        self._forget(entry)
        finish = entry.start  # the team's finish tag before this item came
        weight = self.weight(entry.team)
        for later in itertools.islice(queue, position, None):
            later.start = max(later.floor, finish)
            finish = later.start + later.cost / weight
        self._finish[entry.team] = finish
        self._settle(entry.team, head_changed=was_head)

    def _settle(self, team: str, *, head_changed: bool) -> None:
        """Forget a team with nothing queued, or put its new head on the heap."""
        queue = self._queues[team]
        if not queue:
            del self._queues[team]
        elif head_changed:
            heapq.heappush(self._heads, (queue[0].start, queue[0].ticket, team))
        if len(self._heads) > 2 * len(self._queues) + 16:
            # withdrawn heads leave stale entries; rebuild so memory stays flat without pops
            self._heads = [(q[0].start, q[0].ticket, name) for name, q in self._queues.items()]
            heapq.heapify(self._heads)

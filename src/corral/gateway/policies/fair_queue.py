"""Weighted fair queuing across teams by tokens actually served: a Virtual Token Counter."""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Generic, TypeVar

T = TypeVar("T")

ESTIMATE_SMOOTHING = 0.2
"""Weight of the newest request in a team's running mean of completion tokens."""


class RejectReason(StrEnum):
    """Why a push was refused."""

    QUEUE_FULL = "queue-full"
    """The queue is at its bound and the pushing team holds the largest weighted backlog."""


@dataclass(frozen=True, slots=True)
class TokenDemand:
    """What a request may cost, read from its body before it is served."""

    prompt: int
    """Prompt tokens, estimated from the rendered prompt's size."""
    allowance: int
    """Completion tokens it may use: ``max_tokens`` × ``n``, or the model's default."""

    def __post_init__(self) -> None:
        if self.prompt < 0 or self.allowance < 0:
            raise ValueError("token counts cannot be negative")


@dataclass(frozen=True, slots=True)
class Served:
    """Tokens a finished request actually received."""

    completion: int
    prompt: int | None = None
    """None when the engine did not say: the prompt estimate stands."""


@dataclass(frozen=True, slots=True)
class Pushed(Generic[T]):
    """The result of a push: accepted with a ticket, or rejected; and any items pushed out."""

    accepted: bool
    ticket: int | None = None
    reason: RejectReason | None = None
    evicted: tuple[T, ...] = ()


@dataclass(frozen=True, slots=True)
class Popped(Generic[T]):
    """The next item to serve (None when nothing is waiting) and items dropped as expired.

    A served item's ticket becomes its lease: report progress and the end against it.
    """

    item: T | None
    team: str | None = None
    waited_s: float = 0.0
    expired: tuple[T, ...] = ()
    lease: int | None = None


@dataclass(slots=True, eq=False)
class _Entry(Generic[T]):
    ticket: int
    team: str
    demand: TokenDemand
    item: T
    enqueued_at: float
    deadline: float | None
    backlog: float
    """The reservation it would take if served now: what it adds to its team's backlog."""


@dataclass(slots=True)
class _Lease:
    team: str
    prompt: int
    """Prompt tokens reserved (the estimate)."""
    completion: int
    """Completion tokens reserved: the team's usual answer, capped by the allowance."""
    charged: float = 0.0
    """Tokens charged to the team's counter for this request so far."""


@dataclass(slots=True)
class FairQueue(Generic[T]):
    """Teams are served by the tokens they actually received (Sheng et al., OSDI 2024, VTC).

    Each team has a counter of tokens served divided by its weight. The next item served is the
    oldest one of the waiting team with the smallest counter. Serving an item reserves an
    estimate on its team's counter — its prompt estimate plus the team's usual completion
    length (a running mean of what it received), never more than its allowance — and the
    counter then follows the real tokens: ``progress`` charges tokens streamed past the
    reservation, ``finish`` replaces the reservation with what was served. So a team that
    leaves ``max_tokens`` unset pays for the 20 tokens it got, not the 4096 it might have.

    A team that starts waiting is lifted to the smallest counter among waiting teams (or, when
    none waits, to the counter of the last team served), so idle time banks no credit and a
    flooding team only lengthens its own line. Items that leave unserved (cancelled, expired,
    evicted) cost nothing. When the queue is full, the team with the largest weighted backlog
    loses its newest item to make room, or its own push is refused.
    """

    weights: Mapping[str, float] = field(default_factory=dict)
    default_weight: float = 1.0
    max_items: int = 1024
    _queues: dict[str, deque[_Entry[T]]] = field(init=False, default_factory=dict)
    _counters: dict[str, float] = field(init=False, default_factory=dict)
    _backlog: dict[str, float] = field(init=False, default_factory=dict)
    _tickets: dict[int, _Entry[T]] = field(init=False, default_factory=dict)
    _leases: dict[int, _Lease] = field(init=False, default_factory=dict)
    _usual: dict[str, float] = field(init=False, default_factory=dict)
    _usual_any: float | None = field(init=False, default=None)
    _floor: float = field(init=False, default=0.0)
    _last_served: dict[str, int] = field(init=False, default_factory=dict)
    _serves: int = field(init=False, default=0)
    _counter: itertools.count[int] = field(init=False, default_factory=itertools.count)

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
        """Estimated tokens of ``team``'s waiting items."""
        return self._backlog.get(team, 0.0)

    def counter(self, team: str) -> float:
        """``team``'s virtual token counter: tokens served (and reserved) per unit of weight."""
        return self._counters.get(team, 0.0)

    def queued(self, team: str) -> int:
        """Items ``team`` has waiting."""
        return len(self._queues.get(team, ()))

    def reservation(self, team: str, demand: TokenDemand) -> int:
        """Tokens reserved when ``team``'s request of ``demand`` is served: the prompt estimate
        plus the team's usual completion (else every team's; else the allowance), capped."""
        usual = self._usual.get(team, self._usual_any)
        completion = demand.allowance if usual is None else min(demand.allowance, round(usual))
        return demand.prompt + completion

    def push(
        self, team: str, demand: TokenDemand, item: T, now: float, deadline: float | None = None
    ) -> Pushed[T]:
        """Queue ``item`` for ``team``; it expires at ``deadline`` if given."""
        backlog = float(max(1, self.reservation(team, demand)))
        evicted: tuple[T, ...] = ()
        if len(self) >= self.max_items:
            victim = self._heaviest(team)
            if victim == team:
                return Pushed(False, reason=RejectReason.QUEUE_FULL)
            newest = self._queues[victim][-1]
            self._withdraw(newest)
            evicted = (newest.item,)
        self._lift(team)
        entry = _Entry(next(self._counter), team, demand, item, now, deadline, backlog)
        self._backlog[team] = self.backlog(team) + backlog
        self._tickets[entry.ticket] = entry
        self._queues.setdefault(team, deque()).append(entry)
        return Pushed(True, ticket=entry.ticket, evicted=evicted)

    def pop(self, now: float) -> Popped[T]:
        """The next item to serve, now leased; items past their deadline are dropped."""
        expired: list[T] = []
        while self._queues:
            team = min(self._queues, key=self._turn)
            entry = self._queues[team][0]
            if entry.deadline is not None and entry.deadline <= now:
                self._withdraw(entry)
                expired.append(entry.item)
                continue
            self._withdraw(entry)
            self._serve(entry.ticket, team, entry.demand)
            return Popped(
                entry.item, team, now - entry.enqueued_at, tuple(expired), lease=entry.ticket
            )
        return Popped(None, expired=tuple(expired))

    def admit(self, team: str, demand: TokenDemand) -> int:
        """Serve ``team``'s request at once (nobody waits); returns its lease."""
        lease = next(self._counter)
        self._lift(team)
        self._serve(lease, team, demand)
        return lease

    def progress(self, lease: int, completion_tokens: int) -> None:
        """``completion_tokens`` have streamed so far: charge any beyond the reservation."""
        held = self._leases.get(lease)
        if held is None:
            return
        due = held.prompt + max(held.completion, completion_tokens)
        if due > held.charged:
            self._charge(held, due)

    def finish(self, lease: int, served: Served | None) -> None:
        """The leased request ended: charge exactly what it received (None: nothing at all)."""
        held = self._leases.pop(lease, None)
        if held is None:
            return
        if served is None:
            self._charge(held, 0.0)
            return
        prompt = held.prompt if served.prompt is None else served.prompt
        self._charge(held, prompt + served.completion)
        self._learn(held.team, served.completion)

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

    def requests_ahead(self, team: str) -> int:
        """Roughly how many waiting items go before a new one of ``team``: its own, and each
        other waiting team's fair share of the turns they take (capped by what it has queued)."""
        own = self.queued(team)
        turns = (own + 1) / self.weight(team)
        others = sum(
            min(len(queue), round(turns * self.weight(name)))
            for name, queue in self._queues.items()
            if name != team
        )
        return own + others

    def _turn(self, team: str) -> tuple[float, int, int]:
        """Smallest counter first; on a tie, the team served longest ago (a lifted newcomer
        before the team it was lifted to), then the oldest item."""
        return (self.counter(team), self._last_served.get(team, -1), self._queues[team][0].ticket)

    def _lift(self, team: str) -> None:
        """A team that starts waiting banks no credit for its idle time."""
        if team in self._queues:
            return
        floor = min(map(self.counter, self._queues), default=self._floor)
        self._counters[team] = max(self._counters.get(team, floor), floor)

    def _serve(self, lease: int, team: str, demand: TokenDemand) -> None:
        self._floor = max(self._floor, self.counter(team))
        self._last_served[team] = self._serves = self._serves + 1
        usual = self.reservation(team, demand) - demand.prompt
        held = _Lease(team, demand.prompt, usual)
        self._leases[lease] = held
        self._charge(held, demand.prompt + usual)

    def _charge(self, held: _Lease, tokens: float) -> None:
        """Move ``held``'s charge to ``tokens``; its team's counter follows, by weight."""
        delta = tokens - held.charged
        held.charged = tokens
        self._counters[held.team] = self.counter(held.team) + delta / self.weight(held.team)

    def _learn(self, team: str, completion: int) -> None:
        before = self._usual.get(team)
        self._usual[team] = completion if before is None else _smooth(before, completion)
        everyone = self._usual_any
        self._usual_any = completion if everyone is None else _smooth(everyone, completion)

    def _heaviest(self, team: str) -> str:
        """The team holding the most queued tokens per unit of weight; the pusher wins no ties."""
        return max([team, *self._queues], key=lambda name: self.backlog(name) / self.weight(name))

    def _withdraw(self, entry: _Entry[T]) -> None:
        """Take ``entry`` out of line (served or not); nothing was charged for waiting."""
        queue = self._queues[entry.team]
        if queue[0] is entry:
            queue.popleft()
        else:
            queue.remove(entry)
        del self._tickets[entry.ticket]
        if queue:
            self._backlog[entry.team] -= entry.backlog
        else:  # forget the team: no float residue builds up over time
            del self._queues[entry.team], self._backlog[entry.team]


def _smooth(mean: float, value: float) -> float:
    return mean + ESTIMATE_SMOOTHING * (value - mean)

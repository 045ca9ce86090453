"""The admission arithmetic both backends share: GCRA rate buckets, slots and budget holds.

Each rate limit is a GCRA bucket (a token bucket stored as one number): its "theoretical arrival
time" (TAT) is when the bucket would be empty again. A request costing ``n`` units fits when
``max(TAT, now) + n·(60/limit) - now <= 60``; admitting it moves TAT there. So a scope may burst up
to its whole per-minute limit, and then gets ``limit/60`` units back every second. The Redis Lua
script in ``corral.counters.scripts`` is a line-by-line mirror of ``check`` and ``charge``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from corral.counters.limits import Limits
from corral.counters.port import (
    AdmissionRequest,
    LimitName,
    RateWindow,
    RefusalReason,
    Refused,
    ScopeCharge,
)

PERIOD = 60.0
"""Seconds a per-minute limit's full allowance takes to come back."""
EPSILON = 1e-6
"""Slack for float rounding in TAT arithmetic (seconds); far below any limit's granularity."""
UNIT_SLACK = 1e-3
"""Slack when counting whole units left, so microsecond rounding never hides one."""
CONCURRENCY_RETRY = 1.0
"""Retry-After for a full concurrency limit: a slot frees when some request ends, unknowable."""
_REASONS: dict[LimitName, RefusalReason] = {
    "requests": "rate_limit",
    "tokens": "rate_limit",
    "concurrent": "concurrency",
    "budget": "budget",
}


@dataclass(slots=True)
class RateState:
    """A scope's rate buckets (epoch seconds; 0 is an empty bucket) and its requests in flight."""

    requests_tat: float = 0.0
    tokens_tat: float = 0.0
    in_flight: int = 0


@dataclass(slots=True)
class BudgetState:
    """A scope's month: settled spend and the worst-case holds of requests in flight (micros)."""

    spent: int = 0
    held: int = 0


@dataclass(slots=True)
class ScopeState:
    """What the counters hold for one scope of a request."""

    rate: RateState = field(default_factory=RateState)
    budget: BudgetState = field(default_factory=BudgetState)


@dataclass(frozen=True, slots=True)
class Failure:
    """The limit that refused a request: which scope, which limit, how long to wait."""

    index: int
    limit: LimitName
    retry_after: float | None


def interval(limit: int) -> float:
    """Seconds one unit of a per-minute ``limit`` takes to come back."""
    return PERIOD / limit


def rate_wait(tat: float, now: float, limit: int, cost: int) -> float | None:
    """Seconds until ``cost`` units fit in the bucket: 0 when they fit now, None never."""
    if cost > limit:
        return None
    after = max(tat, now) + cost * interval(limit)
    excess = after - now - PERIOD
    return excess if excess > EPSILON else 0.0


def adjust_tat(tat: float, delta: float, now: float) -> float:
    """The TAT after adding ``delta`` seconds of use (negative: a refund), never below empty.

    Rounded to the microsecond, as Redis stores it, so both backends decide alike.
    """
    return round(max(now, max(tat, now) + delta), 6)


def check(request: AdmissionRequest, states: Sequence[ScopeState], now: float) -> Failure | None:
    """The limit that refuses ``request``, or None when every scope has room for it.

    A budget refusal wins (waiting minutes will not help); among rate and concurrency limits the
    one with the longest wait is reported, since the client must wait for it anyway.
    """
    for index, (scope, state) in enumerate(zip(request.scopes, states, strict=True)):
        budget = scope.limits.budget_micros
        used = state.budget.spent + state.budget.held
        if budget is not None and used + request.cost_micros > budget:
            return Failure(index, "budget", max(0.0, request.period.resets_at - now))
    worst: Failure | None = None
    for index, (scope, state) in enumerate(zip(request.scopes, states, strict=True)):
        for failure in _rate_failures(index, scope.limits, state.rate, request.tokens, now):
            if worst is None or _longer(failure, worst):
                worst = failure
    return worst


def _rate_failures(
    index: int, limits: Limits, state: RateState, tokens: int, now: float
) -> Iterator[Failure]:
    if limits.rpm is not None:
        wait = rate_wait(state.requests_tat, now, limits.rpm, 1)
        if wait != 0.0:
            yield Failure(index, "requests", wait)
    if limits.tpm is not None:
        wait = rate_wait(state.tokens_tat, now, limits.tpm, tokens)
        if wait != 0.0:
            yield Failure(index, "tokens", wait)
    if limits.max_concurrent is not None and state.in_flight >= limits.max_concurrent:
        yield Failure(index, "concurrent", CONCURRENCY_RETRY)


def _longer(a: Failure, b: Failure) -> bool:
    if a.retry_after is None:
        return b.retry_after is not None
    return b.retry_after is not None and a.retry_after > b.retry_after


def charge(request: AdmissionRequest, states: Sequence[ScopeState], now: float) -> None:
    """Take ``request`` from every scope; call only after ``check`` found room."""
    for scope, state in zip(request.scopes, states, strict=True):
        limits = scope.limits
        if limits.rpm is not None:
            state.rate.requests_tat = adjust_tat(state.rate.requests_tat, interval(limits.rpm), now)
        if limits.tpm is not None:
            delta = request.tokens * interval(limits.tpm)
            state.rate.tokens_tat = adjust_tat(state.rate.tokens_tat, delta, now)
        if limits.max_concurrent is not None:
            state.rate.in_flight += 1
        state.budget.held += request.cost_micros


def settle_scope(
    state: ScopeState,
    taken: ScopeCharge,
    tokens: tuple[int, int],
    cost: tuple[int, int],
    now: float,
) -> None:
    """Swap one scope's reserved ``(reserved, actual)`` tokens and cost for the actual ones."""
    if taken.tpm:
        delta = (tokens[1] - tokens[0]) * interval(taken.tpm)
        state.rate.tokens_tat = adjust_tat(state.rate.tokens_tat, delta, now)
    if taken.concurrent:
        state.rate.in_flight = max(0, state.rate.in_flight - 1)
    state.budget.held = max(0, state.budget.held - cost[0])
    state.budget.spent += cost[1]


def window(limit: int, tat: float, now: float) -> RateWindow:
    """One bucket as OpenAI's headers show it: the limit, whole units left, time until full."""
    backlog = max(0.0, tat - now)
    remaining = math.floor(limit - backlog / interval(limit) + UNIT_SLACK)
    return RateWindow(limit=limit, remaining=max(0, remaining), reset=backlog)


def windows(
    request: AdmissionRequest, states: Sequence[ScopeState], now: float
) -> tuple[RateWindow | None, RateWindow | None]:
    """The tightest requests and tokens windows across the request's scopes."""
    requests: RateWindow | None = None
    tokens: RateWindow | None = None
    for scope, state in zip(request.scopes, states, strict=True):
        if scope.limits.rpm is not None:
            requests = _tighter(requests, window(scope.limits.rpm, state.rate.requests_tat, now))
        if scope.limits.tpm is not None:
            tokens = _tighter(tokens, window(scope.limits.tpm, state.rate.tokens_tat, now))
    return requests, tokens


def _tighter(current: RateWindow | None, other: RateWindow) -> RateWindow:
    if current is None or (other.remaining, -other.reset) < (current.remaining, -current.reset):
        return other
    return current


def refused(
    request: AdmissionRequest, failure: Failure, states: Sequence[ScopeState], now: float
) -> Refused:
    """The refusal a client sees for ``failure``, with the numbers its message needs."""
    scope = request.scopes[failure.index]
    state = states[failure.index]
    limits = scope.limits
    allowed, used, needed = 0, 0, 0
    if failure.limit == "budget":
        allowed = limits.budget_micros or 0
        used, needed = state.budget.spent + state.budget.held, request.cost_micros
    elif failure.limit == "concurrent":
        allowed, used, needed = limits.max_concurrent or 0, state.rate.in_flight, 1
    else:
        per_minute = limits.rpm if failure.limit == "requests" else limits.tpm
        tat = state.rate.requests_tat if failure.limit == "requests" else state.rate.tokens_tat
        allowed = per_minute or 0
        used = allowed - window(allowed, tat, now).remaining
        needed = 1 if failure.limit == "requests" else request.tokens
    requests, tokens = windows(request, states, now)
    return Refused(
        reason=_REASONS[failure.limit],
        limit=failure.limit,
        scope=scope,
        retry_after=failure.retry_after,
        allowed=allowed,
        used=used,
        needed=needed,
        resets_at=request.period.resets_at if failure.limit == "budget" else None,
        requests=requests,
        tokens=tokens,
    )

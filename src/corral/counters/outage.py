"""When the shared counters count as down, and when as back: a pure policy with hysteresis.

A single failed call says little: a connection reset by a Redis restart fails every call in
flight at once, and a loaded machine may miss one timeout. So Redis counts as down only after
``failures`` calls in a row failed over at least ``over`` seconds, with no success between.
While down, one call every ``probe_every`` seconds tries Redis again, and Redis counts as back
after ``recoveries`` probes in a row succeed (so it must answer for ``probe_every`` seconds or
more). A busy connection pool is neither: it is not fed
to this policy at all.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum


class CountersState(StrEnum):
    """Which counters admission is using (exported as a metric)."""

    SHARED = "shared"
    DEGRADED = "degraded"


@dataclass(frozen=True, slots=True)
class OutagePolicy:
    """The thresholds of the decision "Redis is down" and "Redis is back"."""

    failures: int = 3
    """Failed calls in a row before Redis counts as down."""
    over: float = 1.0
    """...spanning at least this many seconds from the first of them."""
    probe_every: float = 2.0
    """While down, seconds between calls that try Redis again."""
    recoveries: int = 2
    """Successful probes in a row before Redis counts as back."""


@dataclass(frozen=True, slots=True)
class Health:
    """What the policy remembers about recent calls to the shared counters."""

    state: CountersState = CountersState.SHARED
    failures: int = 0
    """Failed calls since the last success."""
    failing_since: float | None = None
    """When the first of those failed."""
    successes: int = 0
    """While down: successful probes since the last failure."""
    next_probe: float = 0.0
    """While down: when the next call may try Redis."""
    since: float | None = None
    """While down: when Redis was declared down."""


def may_call(health: Health, now: float) -> bool:
    """Whether a call should go to Redis now (always while shared; while down, a due probe)."""
    return health.state is CountersState.SHARED or now >= health.next_probe


def probing(health: Health, policy: OutagePolicy, now: float) -> Health:
    """The health once a call has been let through: while down, the next probe waits."""
    if health.state is CountersState.SHARED:
        return health
    return replace(health, next_probe=now + policy.probe_every)


def after_failure(health: Health, policy: OutagePolicy, now: float) -> Health:
    """The health after a call to Redis failed (refused, reset, timed out)."""
    failing_since = health.failing_since if health.failing_since is not None else now
    failures = health.failures + 1
    if health.state is CountersState.DEGRADED:
        return replace(
            health,
            failures=failures,
            failing_since=failing_since,
            successes=0,
            next_probe=max(health.next_probe, now + policy.probe_every),
        )
    if failures >= policy.failures and now - failing_since >= policy.over:
        return Health(
            state=CountersState.DEGRADED,
            failures=failures,
            failing_since=failing_since,
            next_probe=now + policy.probe_every,
            since=now,
        )
    return replace(health, failures=failures, failing_since=failing_since)


def after_success(health: Health, policy: OutagePolicy, now: float) -> Health:
    """The health after a call to Redis answered."""
    if health.state is CountersState.SHARED:
        return Health() if health.failures else health
    successes = health.successes + 1
    if successes >= policy.recoveries:
        return Health()
    return replace(
        health,
        failures=0,
        failing_since=None,
        successes=successes,
        next_probe=max(health.next_probe, now + policy.probe_every),
    )

"""The outage policy: Redis is down only after repeated failures over time, back only after
repeated successes over time (hysteresis), driven by a fake clock (plain numbers)."""

from __future__ import annotations

from corral.counters.outage import (
    CountersState,
    Health,
    OutagePolicy,
    after_failure,
    after_success,
    may_call,
    probing,
)

POLICY = OutagePolicy(failures=3, over=1.0, probe_every=2.0, recoveries=2)


def fail(health: Health, *times: float) -> Health:
    for now in times:
        health = after_failure(probing(health, POLICY, now), POLICY, now)
    return health


def test_a_burst_of_failures_at_one_instant_is_not_an_outage() -> None:
    # A Redis restart resets every connection at once: many calls fail in the same instant.
    health = fail(Health(), *[100.0] * 50)
    assert health.state is CountersState.SHARED
    assert health.failures == 50


def test_failures_in_a_row_over_time_are_an_outage() -> None:
    health = fail(Health(), 100.0, 100.4)
    assert health.state is CountersState.SHARED
    health = fail(health, 100.9)
    assert health.state is CountersState.SHARED  # three failures, but only 0.9 s
    health = fail(health, 101.0)
    assert health.state is CountersState.DEGRADED
    assert health.since == 101.0


def test_too_few_failures_over_a_long_time_are_not_an_outage() -> None:
    health = fail(Health(), 100.0, 200.0)
    assert health.state is CountersState.SHARED


def test_one_success_between_failures_starts_the_count_again() -> None:
    health = fail(Health(), 100.0, 100.5)
    health = after_success(health, POLICY, 100.6)
    assert health == Health()
    health = fail(health, 100.7, 101.8)
    assert health.state is CountersState.SHARED


def test_while_down_only_one_call_per_probe_interval_tries_redis() -> None:
    health = fail(Health(), 100.0, 100.5, 101.0)
    assert not may_call(health, 101.5)
    assert may_call(health, 103.0)
    health = probing(health, POLICY, 103.0)
    assert not may_call(health, 103.1)  # the probe is in flight: the others stay local
    health = after_failure(health, POLICY, 103.2)
    assert health.state is CountersState.DEGRADED
    assert not may_call(health, 104.9)
    assert may_call(health, 105.2)


def test_redis_is_back_only_after_probes_succeed_over_time() -> None:
    health = fail(Health(), 100.0, 100.5, 101.0)
    health = after_success(probing(health, POLICY, 103.0), POLICY, 103.0)
    assert health.state is CountersState.DEGRADED  # one answer is not enough
    assert not may_call(health, 104.0)
    health = after_success(probing(health, POLICY, 105.0), POLICY, 105.0)
    assert health.state is CountersState.SHARED
    assert health == Health()


def test_a_failed_probe_between_successes_keeps_it_down() -> None:
    health = fail(Health(), 100.0, 100.5, 101.0)
    health = after_success(probing(health, POLICY, 103.0), POLICY, 103.0)
    health = fail(health, 105.0)
    health = after_success(probing(health, POLICY, 107.0), POLICY, 107.0)
    assert health.state is CountersState.DEGRADED
    health = after_success(probing(health, POLICY, 109.0), POLICY, 109.0)
    assert health.state is CountersState.SHARED

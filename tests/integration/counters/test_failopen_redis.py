"""FailOpenCounters over a Redis that is not there: keeps serving locally, reports degraded."""

from __future__ import annotations

import socket

import pytest

from corral.counters import AdmissionRequest, Admitted, BudgetPeriod, Limits, Refused, Scope
from corral.counters.failopen import CountersState, FailOpenCounters
from corral.counters.redis import RedisCounters
from corral.errors import TemporaryError

pytestmark = pytest.mark.redis

MONTH = BudgetPeriod(key="2023-11", starts_at=1_698_796_800.0, resets_at=1_701_388_800.0)
REQUEST = AdmissionRequest(
    scopes=(Scope("key", "k", Limits(rpm=2, monthly_budget_usd=1)),),
    tokens=10,
    cost_micros=100,
    period=MONTH,
)


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_redis_counters_on_a_closed_port_raise_temporary_error() -> None:
    counters = RedisCounters.from_url(f"redis://127.0.0.1:{closed_port()}/0")
    try:
        with pytest.raises(TemporaryError, match="Redis cannot be used"):
            await counters.reserve(REQUEST, 0.0)
    finally:
        await counters.aclose()


async def test_fail_open_keeps_admitting_and_limiting_on_local_counters(
    caplog: pytest.LogCaptureFixture,
) -> None:
    shared = RedisCounters.from_url(f"redis://127.0.0.1:{closed_port()}/0")
    counters = FailOpenCounters(shared, retry_interval=5.0)
    try:
        first = await counters.reserve(REQUEST, 0.0)
        second = await counters.reserve(REQUEST, 0.1)
        third = await counters.reserve(REQUEST, 0.2)
        assert isinstance(first, Admitted)
        assert isinstance(second, Admitted)
        assert isinstance(third, Refused)  # the per-process limit still applies
        assert first.reservation.backend == "local"
        assert counters.state is CountersState.DEGRADED
        assert await counters.settle(first.reservation, 5, 50, 0.3)
        assert await counters.release(second.reservation, 6.0)  # past the retry: still fine
        assert (await counters.spend("key:k", MONTH.key)).spent_micros == 50
        assert await counters.reconcile(7.0) == []
    finally:
        await counters.aclose()
    warnings = [r for r in caplog.records if "per-process counters" in r.getMessage()]
    assert len(warnings) == 1

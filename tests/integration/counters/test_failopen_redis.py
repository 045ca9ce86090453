"""FailOpenCounters over a Redis that is not there: rate limits per process, budgets by share."""

from __future__ import annotations

import socket

import pytest

from corral.counters import AdmissionRequest, Admitted, BudgetPeriod, Limits, Refused, Scope
from corral.counters.failopen import FailOpenCounters
from corral.counters.outage import CountersState
from corral.counters.port import CountersUnreachable
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
UNBUDGETED = AdmissionRequest(
    scopes=(Scope("key", "u", Limits(rpm=2)),), tokens=10, cost_micros=100, period=MONTH
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


async def test_a_refused_connection_is_an_outage_rate_limits_fail_open_budgets_by_share(
    caplog: pytest.LogCaptureFixture,
) -> None:
    shared = RedisCounters.from_url(f"redis://127.0.0.1:{closed_port()}/0")
    counters = FailOpenCounters(shared, processes=2)
    await counters.seed_spend("key:k", MONTH.key, 999_700)  # the ledger's figure: 300 left
    try:
        with pytest.raises(CountersUnreachable, match="only the shared counters can check"):
            await counters.reserve(REQUEST, 0.0)  # one failure is no outage yet
        with pytest.raises(CountersUnreachable):
            await counters.reserve(REQUEST, 0.5)
        first = await counters.reserve(REQUEST, 1.0)  # the third, a second on: Redis is down
        assert isinstance(first, Admitted)
        assert first.reservation.backend == "local"
        assert counters.state is CountersState.DEGRADED
        assert isinstance(await counters.reserve(UNBUDGETED, 1.1), Admitted)
        assert isinstance(await counters.reserve(UNBUDGETED, 1.2), Admitted)
        assert isinstance(await counters.reserve(UNBUDGETED, 1.3), Refused)  # rpm 2, here
        with pytest.raises(CountersUnreachable, match="its share"):
            await counters.reserve(REQUEST, 1.4)  # 100 held of a 150 share: 100 more won't fit
        assert await counters.settle(first.reservation, 5, 50, 1.5)
        assert (await counters.spend("key:k", MONTH.key)).spent_micros == 999_750
        assert await counters.reconcile(7.0) == []
    finally:
        await counters.aclose()
    warnings = [r for r in caplog.records if "unavailable" in r.getMessage()]
    assert len(warnings) == 1

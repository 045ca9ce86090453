"""When the counters cannot decide now (busy, or Redis down for a budget), the client gets 503
with Retry-After in OpenAI's error format, never a 500 or a guess."""

from __future__ import annotations

import pytest

from corral.catalog import FakeEngineConfig, ModelSpec, Pricing
from corral.clock import FakeClock
from corral.counters import AdmissionRequest, Admitted, Limits, LocalCounters, Refused
from corral.counters.port import CountersBusy, CountersUnreachable
from corral.errors import Overloaded, TemporaryError
from corral.gateway.calls import ApiCall, CallKind
from corral.gateway.quotas import LimitBook, Quotas
from corral.gateway.routes import LiveEndpoint, ModelRoute
from corral.principals import Principal, Role

MODEL = ModelSpec(
    name="m", engine=FakeEngineConfig(), pricing=Pricing(input_per_1m=1, output_per_1m=2)
)
ROUTE = ModelRoute(spec=MODEL, endpoints=[LiveEndpoint("http://127.0.0.1:9/v1")])
CALL = ApiCall(CallKind.CHAT, "m", False, False, 16, {"messages": []}, b"")
WHO = Principal(key_id="k1", role=Role.DEVELOPER, team_id="t1", user_id="u1")


class UndecidedCounters(LocalCounters):
    def __init__(self, error: TemporaryError) -> None:
        super().__init__()
        self.error = error

    async def reserve(self, request: AdmissionRequest, now: float) -> Admitted | Refused:
        raise self.error


@pytest.mark.parametrize(
    ("error", "retry_after"),
    [
        (CountersBusy("The shared counters are busy: all 32 connections stayed busy."), 1),
        (CountersUnreachable("The shared budget counters (Redis) are down ...", delay=5.0), 5),
    ],
)
async def test_undecided_counters_answer_503_with_retry_after(
    error: TemporaryError, retry_after: int
) -> None:
    book = LimitBook(Limits(), Limits())
    book.replace({}, {"t1": Limits(monthly_budget_usd=1)})
    quotas = Quotas(UndecidedCounters(error), book, FakeClock())
    with pytest.raises(Overloaded) as answered:
        await quotas.admit(WHO, CALL, ROUTE, "r1", [])
    assert answered.value.status == 503
    assert answered.value.retry_after == retry_after
    assert answered.value.envelope()["error"]["message"] == error.message

"""The dispatcher asks a model that may scale to zero for a replica before it queues or relays."""

from __future__ import annotations

from typing import Any, cast

import pytest
from prometheus_client import CollectorRegistry

from corral.catalog import Endpoint, ModelSpec, OpenAIEngine
from corral.clock import FakeClock
from corral.errors import Overloaded
from corral.gateway.calls import CallKind, parse_call
from corral.gateway.dispatch import Dispatcher, attempt_for
from corral.gateway.metrics import GatewayMetrics
from corral.gateway.relay import Exchange, Outcome, Relay
from corral.gateway.routes import LiveEndpoint, ModelRoute, RouteTable


class RecordingRelay:
    """Stands in for the relay: records which endpoint each exchange went to."""

    def __init__(self) -> None:
        self.sent: list[str] = []

    async def relay(self, ex: Exchange, send: Any) -> None:
        self.sent.append(ex.endpoint.base_url)


class Gate:
    def __init__(self, ready: bool) -> None:
        self.ready = ready
        self.asked: list[tuple[str, float]] = []

    async def ensure_ready(self, model: str, deadline: float) -> bool:
        self.asked.append((model, deadline))
        return self.ready

    def refusal(self, model: str) -> Overloaded:
        return Overloaded(f"{model} is starting", code="model_cold_start", retry_after=7)


def setup(gate: Gate | None) -> tuple[Dispatcher, RecordingRelay, ModelRoute, FakeClock]:
    url = "http://m:1/v1"
    spec = ModelSpec(name="m", engine=OpenAIEngine(endpoints=[Endpoint(url=url)]))
    route = ModelRoute(spec, [LiveEndpoint(url)], cold_start=gate)
    relay, clock = RecordingRelay(), FakeClock()
    metrics = GatewayMetrics(CollectorRegistry())
    dispatcher = Dispatcher(cast(Relay, relay), RouteTable([route]), clock, metrics)
    return dispatcher, relay, route, clock


async def dispatch(dispatcher: Dispatcher, route: ModelRoute) -> None:
    call = parse_call(
        CallKind.CHAT, b'{"model": "m", "messages": [{"role": "user", "content": "x"}]}'
    )
    attempt = attempt_for(
        call, route, team="t", session_header=None, request_id="r", headers=[], outcome=Outcome()
    )

    async def send(message: Any) -> None:
        del message

    await dispatcher.dispatch(attempt, send)


async def test_a_ready_model_is_relayed_and_the_wait_is_bounded_by_the_request_budget() -> None:
    gate = Gate(ready=True)
    dispatcher, relay, route, clock = setup(gate)
    await dispatch(dispatcher, route)
    assert relay.sent == ["http://m:1/v1"]
    assert gate.asked == [("m", clock.monotonic() + route.spec.timeouts.total)]


async def test_a_model_that_stays_cold_is_a_503_with_retry_after_and_nothing_is_relayed() -> None:
    dispatcher, relay, route, _ = setup(Gate(ready=False))
    with pytest.raises(Overloaded) as caught:
        await dispatch(dispatcher, route)
    assert (caught.value.status, caught.value.code, caught.value.retry_after) == (
        503,
        "model_cold_start",
        7,
    )
    assert relay.sent == []


async def test_ordinary_routes_never_meet_a_gate() -> None:
    dispatcher, relay, route, _ = setup(None)
    await dispatch(dispatcher, route)
    assert relay.sent == ["http://m:1/v1"]

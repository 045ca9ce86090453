"""A model's fair-queue capacity follows the endpoints in rotation."""

from __future__ import annotations

from corral.catalog import Endpoint, EndpointHealth, FairQueueing, ModelSpec, OpenAIEngine
from corral.clock import FakeClock
from corral.gateway.routes import LiveEndpoint, ModelRoute


def test_ejecting_an_endpoint_shrinks_the_queue_and_readmission_restores_it() -> None:
    urls = ["http://a:1/v1", "http://b:1/v1", "http://c:1/v1"]
    spec = ModelSpec(
        name="m",
        engine=OpenAIEngine(endpoints=[Endpoint(url=u) for u in urls]),
        fair_queueing=FairQueueing(max_in_flight_per_endpoint=4),
        health=EndpointHealth(eject_after=1, ejection_seconds=10),
    )
    clock = FakeClock()
    route = ModelRoute(spec, [LiveEndpoint(u) for u in urls])
    route.attach_queue(clock)
    assert route.queue is not None
    assert route.queue.capacity == 12
    route.failed(1, clock.monotonic())
    assert route.queue.capacity == 8
    clock.advance(11)
    route.sync_capacity(clock.monotonic())
    assert route.queue.capacity == 12

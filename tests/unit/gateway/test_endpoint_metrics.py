"""Endpoint state as Prometheus reads it at scrape time: in flight, ejected, ejections."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from corral.catalog import ModelSpec
from corral.clock import FakeClock
from corral.gateway.endpoints import EndpointCollector
from corral.gateway.routes import LiveEndpoint, ModelRoute, RouteTable


def test_ejections_are_counted_per_replica_and_outlive_the_ejection() -> None:
    spec = ModelSpec.model_validate(
        {
            "name": "m",
            "engine": {"kind": "openai", "endpoints": [{"url": "http://a:1/v1"}]},
            "health": {"eject_after": 2, "ejection_seconds": 10},
        }
    )
    route = ModelRoute(spec, [LiveEndpoint("http://a:1/v1"), LiveEndpoint("http://b:2/v1")])
    clock = FakeClock()
    registry = CollectorRegistry()
    registry.register(EndpointCollector(RouteTable([route]), clock))
    route.failed(0, clock.monotonic())
    route.failed(0, clock.monotonic())

    def sample(name: str, replica: str) -> float | None:
        return registry.get_sample_value(name, {"model": "m", "replica": replica})

    assert sample("corral_endpoint_ejected", "a:1") == 1.0
    assert sample("corral_endpoint_ejections_total", "a:1") == 1.0
    assert sample("corral_endpoint_ejections_total", "b:2") == 0.0
    clock.advance(11)
    assert sample("corral_endpoint_ejected", "a:1") == 0.0  # back in rotation
    assert sample("corral_endpoint_ejections_total", "a:1") == 1.0  # the count stays

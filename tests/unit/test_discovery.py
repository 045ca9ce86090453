"""Model discovery: sources reconciled into the route table, failures keep what was learned."""

from __future__ import annotations

from corral.clock import FakeClock
from corral.composition.discovery import ModelDiscovery
from corral.control.discovery import KubeServiceSource
from corral.control.render.network import render_service
from corral.control.spec import parse_spec
from corral.discovery import DiscoveredModel
from corral.errors import Overloaded, TemporaryError
from corral.gateway.routes import RouteTable
from corral.kube.fake import FakeKube


class Source:
    name = "scripted"

    def __init__(self) -> None:
        self.reported: list[DiscoveredModel] = []
        self.error: Exception | None = None

    async def models(self) -> list[DiscoveredModel]:
        if self.error is not None:
            raise self.error
        return list(self.reported)


class Gate:
    async def ensure_ready(self, model: str, deadline: float) -> bool:
        return True

    def refusal(self, model: str) -> Overloaded:
        return Overloaded("starting")


def model(name: str = "m", **kw: int | None) -> DiscoveredModel:
    return DiscoveredModel(name, (f"http://{name}:8000/v1",), source="scripted", **kw)  # type: ignore[arg-type]


async def test_a_failing_source_keeps_the_models_it_reported_last() -> None:
    source, table = Source(), RouteTable([])
    discovery = ModelDiscovery([source], table, FakeClock(), interval=10)
    source.reported = [model()]
    assert (await discovery.refresh()).added == ("m",)
    source.error = TemporaryError("API server unreachable")
    assert not await discovery.refresh()
    assert table.names() == ["m"]
    source.error, source.reported = None, []
    assert (await discovery.refresh()).removed == ("m",)


async def test_a_model_seen_at_zero_keeps_being_held_while_it_exists() -> None:
    source, table, gate = Source(), RouteTable([]), Gate()
    discovery = ModelDiscovery([source], table, FakeClock(), interval=10)
    discovery.cold_start = gate
    source.reported = [model(ready_replicas=1)]
    await discovery.refresh()
    assert table.get("m").cold_start is None  # type: ignore[union-attr]
    source.reported = [model(ready_replicas=0)]
    await discovery.refresh()
    assert table.get("m").cold_start is gate  # type: ignore[union-attr]
    source.reported = [model(ready_replicas=1)]
    await discovery.refresh()
    route = table.get("m")
    assert route is not None
    assert route.cold_start is gate
    assert route.ready_replicas == 1


async def test_the_kubernetes_source_reads_corral_services_and_their_ready_endpoints() -> None:
    spec = parse_spec(
        {
            "name": "qwen",
            "model": {"source": "Qwen/Qwen2.5-0.5B-Instruct", "served_name": "qwen-small"},
            "accelerator": {"type": "cpu"},
            "replicas": {"min": 0, "max": 2},
        }
    )
    kube = FakeKube()
    await kube.apply(render_service(spec))
    await kube.apply(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "other", "namespace": "corral-models"},
            "spec": {"ports": [{"port": 80}]},
        }
    )
    source = KubeServiceSource(kube, ["corral-models"])
    [found] = await source.models()
    assert found == DiscoveredModel(
        "qwen-small",
        ("http://qwen.corral-models.svc:8000/v1",),
        source="kubernetes",
        min_replicas=0,
        ready_replicas=0,
    )
    await kube.apply(
        {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {
                "name": "qwen-abc",
                "namespace": "corral-models",
                "labels": {"kubernetes.io/service-name": "qwen"},
            },
            "endpoints": [{"conditions": {"ready": True}}, {"conditions": {"ready": False}}],
        }
    )
    [found] = await source.models()
    assert found.ready_replicas == 1
    assert found.scales_to_zero

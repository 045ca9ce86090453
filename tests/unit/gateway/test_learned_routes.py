"""The route table learns, updates and forgets models; configured ones are never touched."""

from __future__ import annotations

from corral.catalog import Endpoint, ModelSpec, OpenAIEngine
from corral.clock import FakeClock
from corral.errors import Overloaded
from corral.gateway.endpoints import wants_probes
from corral.gateway.routes import LearnedRoute, LiveEndpoint, ModelRoute, RouteTable


def spec(name: str, *urls: str, aliases: tuple[str, ...] = ()) -> ModelSpec:
    return ModelSpec(
        name=name,
        aliases=list(aliases),
        engine=OpenAIEngine(endpoints=[Endpoint(url=u) for u in urls]),
    )


class Gate:
    """A ColdStart that says what it is told."""

    def __init__(self, ready: bool = True) -> None:
        self.ready = ready

    async def ensure_ready(self, model: str, deadline: float) -> bool:
        return self.ready

    def refusal(self, model: str) -> Overloaded:
        return Overloaded(f"{model} is starting", code="model_cold_start", retry_after=3)


def configured() -> RouteTable:
    route = ModelRoute(
        spec("static", "http://s:1/v1", aliases=("alias",)), [LiveEndpoint("http://s:1/v1")]
    )
    return RouteTable([route])


def test_learned_models_are_added_updated_and_removed_beside_configured_ones() -> None:
    table, clock = configured(), FakeClock()
    changes = table.reconcile([LearnedRoute(spec("a", "http://a:1/v1"))], clock)
    assert changes.added == ("a",)
    assert table.names() == ["a", "static"]
    first = table.get("a")
    assert first is not None

    # Same spec: the same route object, so its outlier and latency state survive.
    assert not table.reconcile([LearnedRoute(spec("a", "http://a:1/v1"), ready_replicas=2)], clock)
    assert table.get("a") is first
    assert first.ready_replicas == 2

    first.endpoints[0].in_flight = 3
    changes = table.reconcile([LearnedRoute(spec("a", "http://a:1/v1", "http://a2:1/v1"))], clock)
    assert changes.updated == ("a",)
    second = table.get("a")
    assert second is not None
    assert second is not first
    assert second.endpoints[0] is first.endpoints[0]  # in-flight counts carry over
    assert [e.base_url for e in second.endpoints] == ["http://a:1/v1", "http://a2:1/v1"]

    changes = table.reconcile([], clock)
    assert changes.removed == ("a",)
    assert table.get("a") is None
    assert table.names() == ["static"]


def test_a_learned_model_never_replaces_a_configured_name_or_alias() -> None:
    table, clock = configured(), FakeClock()
    static = table.get("static")
    changes = table.reconcile(
        [
            LearnedRoute(spec("static", "http://x:1/v1")),
            LearnedRoute(spec("alias", "http://x:1/v1")),
        ],
        clock,
    )
    assert changes.shadowed == ("static", "alias")
    assert not changes
    assert table.get("static") is static
    assert table.get("alias") is static
    assert table.learned() == []


def test_lookups_keep_the_generation_they_started_with() -> None:
    table, clock = configured(), FakeClock()
    table.reconcile([LearnedRoute(spec("a", "http://a:1/v1"))], clock)
    routes = iter(table)
    table.reconcile([], clock)
    assert sorted(r.name for r in routes) == ["a", "static"]


def test_models_that_may_scale_to_zero_are_never_probed() -> None:
    table, clock = configured(), FakeClock()
    table.reconcile(
        [
            LearnedRoute(spec("warm", "http://w:1/v1")),
            LearnedRoute(spec("cold", "http://c:1/v1"), cold_start=Gate(), ready_replicas=0),
        ],
        clock,
    )
    probed = {r.name: wants_probes(r) for r in table}
    assert probed == {"static": True, "warm": True, "cold": False}

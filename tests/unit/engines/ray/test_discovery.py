"""Which Serve applications the gateway learns, and at which proxy URL (no Ray needed)."""

from __future__ import annotations

from corral.engines.fake import FakeEngine, FakeScript
from corral.engines.ray.deployer import ApplicationState, DeploymentState
from corral.engines.ray.discovery import RayServeSource, discovered, served_names


def app(name: str, status: str, *deployments: tuple[str, int]) -> ApplicationState:
    states = tuple(DeploymentState(d, "HEALTHY", running, 0, "") for d, running in deployments)
    return ApplicationState(name, status, None, "", states)


def test_corral_applications_are_routed_through_the_proxy_under_their_prefix() -> None:
    model = discovered(app("tiny", "RUNNING", ("corral-replica", 2)), "http://ray-head:8000/")
    assert model is not None
    assert model.name == "tiny"
    assert model.base_urls == ("http://ray-head:8000/tiny/v1",)
    assert model.ready_replicas == 2
    assert not model.active_probes


def test_an_llm_app_is_ready_only_when_every_deployment_runs_a_replica() -> None:
    model = discovered(app("llm", "RUNNING", ("OpenAiIngress", 1), ("qwen", 0)), "http://h:8000")
    assert model is not None
    assert model.ready_replicas == 0
    assert model.scales_to_zero


def test_foreign_failed_and_deleting_applications_are_not_learned() -> None:
    assert discovered(app("other", "RUNNING", ("Whatever", 1)), "http://h:8000") is None
    assert discovered(app("x", "DEPLOY_FAILED", ("corral-replica", 0)), "http://h:8000") is None
    assert discovered(app("x", "DELETING", ("corral-replica", 1)), "http://h:8000") is None


class Target:
    """RayServeTarget's status, scripted."""

    def __init__(self, *apps: ApplicationState) -> None:
        self.apps = list(apps)

    def applications(self) -> list[ApplicationState]:
        return self.apps


async def test_a_running_llm_app_is_called_upstream_by_the_id_it_serves() -> None:
    asked: list[str] = []

    async def names(base_url: str) -> list[str]:
        asked.append(base_url)
        return ["Qwen2.5-0.5B-Instruct"]

    target = Target(app("qwen", "RUNNING", ("OpenAiIngress", 1), ("qwen", 1)))
    source = RayServeSource(target, "http://h:8000", names)  # type: ignore[arg-type]
    (model,) = await source.models()
    assert (model.name, model.upstream_model) == ("qwen", "Qwen2.5-0.5B-Instruct")
    await source.models()
    assert asked == ["http://h:8000/qwen/v1"]  # read once, then remembered


async def test_a_model_at_zero_is_not_woken_to_ask_its_name() -> None:
    async def names(base_url: str) -> list[str]:
        raise AssertionError("a request would wake the model")

    target = Target(app("qwen", "RUNNING", ("OpenAiIngress", 0), ("qwen", 0)))
    source = RayServeSource(target, "http://h:8000", names)  # type: ignore[arg-type]
    (model,) = await source.models()
    assert model.upstream_model is None


async def test_an_app_serving_its_own_name_or_not_answering_keeps_it() -> None:
    async def same(base_url: str) -> list[str]:
        return ["tiny"]

    async def down(base_url: str) -> list[str]:
        raise OSError("connection refused")

    running = app("tiny", "RUNNING", ("corral-replica", 1))
    for names in (same, down):
        source = RayServeSource(Target(running), "http://h:8000", names)  # type: ignore[arg-type]
        (model,) = await source.models()
        assert model.upstream_model is None


async def test_served_names_reads_an_openai_models_list() -> None:
    engine = FakeEngine(FakeScript(), model="served-id")
    await engine.start()
    try:
        assert await served_names(engine.base_url) == ["served-id"]
    finally:
        await engine.stop()

"""Which Serve applications the gateway learns, and at which proxy URL (no Ray needed)."""

from __future__ import annotations

from corral.engines.ray.deployer import ApplicationState, DeploymentState
from corral.engines.ray.discovery import discovered


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

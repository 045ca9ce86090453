"""The plain vLLM Deployment's HorizontalPodAutoscaler: rendered from the spec, checked strictly."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from corral.control.render.autoscaling import HPA_METRIC, render_hpa
from corral.control.render.manifests import external_references, render
from corral.control.spec import DeploymentSpec, load_spec, parse_spec
from corral.control.validation.manifests import find_problems
from corral.errors import ConfigError

REPO = Path(__file__).parents[3]
FIXTURES = REPO / "tests" / "fixtures" / "control"


@pytest.fixture(scope="module")
def plain() -> DeploymentSpec:
    return load_spec(FIXTURES / "specs" / "vllm-deployment.yaml")


def deployment_spec(**replicas: Any) -> dict[str, Any]:
    return {
        "name": "m",
        "model": {"source": "meta-llama/Llama-3.1-8B-Instruct"},
        "engine": {"runtime": "deployment"},
        "replicas": replicas,
    }


def refusal(data: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as info:
        parse_spec(data)
    return info.value.message


def test_hpa_follows_the_spec_replicas_and_targets(plain: DeploymentSpec) -> None:
    [hpa] = render_hpa(plain)
    spec = hpa["spec"]
    assert (spec["minReplicas"], spec["maxReplicas"]) == (1, 6)
    assert spec["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "mistral-7b",
    }
    [metric] = spec["metrics"]
    assert metric["type"] == "Pods"
    assert metric["pods"]["metric"]["name"] == HPA_METRIC == "vllm_num_requests_ongoing"
    assert metric["pods"]["target"] == {"type": "AverageValue", "averageValue": "24"}
    assert spec["behavior"]["scaleUp"]["stabilizationWindowSeconds"] == 60
    assert spec["behavior"]["scaleDown"]["stabilizationWindowSeconds"] == 900


def test_deployment_leaves_the_replica_count_to_its_hpa(plain: DeploymentSpec) -> None:
    deployment = next(o for o in render(plain) if o["kind"] == "Deployment")
    assert "replicas" not in deployment["spec"]


def test_fixed_size_deployment_gets_no_hpa_and_a_replica_count() -> None:
    fixed = parse_spec(deployment_spec(min=2, max=2))
    objs = render(fixed)
    assert "HorizontalPodAutoscaler" not in [o["kind"] for o in objs]
    assert next(o for o in objs if o["kind"] == "Deployment")["spec"]["replicas"] == 2


def test_rayservice_runtime_gets_no_hpa() -> None:
    ray = parse_spec({**deployment_spec(min=1, max=4), "engine": {"runtime": "rayservice"}})
    assert render_hpa(ray) == []


def test_scale_to_zero_is_refused_for_the_deployment_runtime() -> None:
    message = refusal(deployment_spec(min=0, max=3))
    assert "replicas.min 0 is not possible with engine.runtime deployment" in message
    assert "use engine.runtime rayservice" in message


def test_scale_to_zero_stays_allowed_for_rayservice() -> None:
    data = {**deployment_spec(min=0, max=3), "engine": {"runtime": "rayservice"}}
    assert parse_spec(data).replicas.min == 0


def test_window_beyond_the_hpa_limit_is_refused() -> None:
    message = refusal(deployment_spec(min=1, max=3, downscale_delay_s=7200))
    assert "replicas.downscale_delay_s must be at most 3600" in message


def test_spec_schema_documents_the_hpa_metric() -> None:
    from corral.control.spec import deployment_schema

    replicas = deployment_schema()["$defs"]["ReplicaSpec"]
    assert "vllm_num_requests_ongoing" in replicas["description"]
    assert (
        "vllm_num_requests_ongoing"
        in replicas["properties"]["target_ongoing_requests"]["description"]
    )


def test_hpa_validates_strictly_and_typos_are_caught(plain: DeploymentSpec) -> None:
    objs = copy.deepcopy(render(plain))
    assert find_problems(objs, external=external_references(plain)) == []
    hpa = next(o for o in objs if o["kind"] == "HorizontalPodAutoscaler")
    hpa["spec"]["minReplica"] = 1
    found = find_problems(objs, external=external_references(plain))
    assert any(p.startswith("HorizontalPodAutoscaler/corral-models/mistral-7b") for p in found)


def test_hpa_must_target_a_rendered_workload(plain: DeploymentSpec) -> None:
    objs = copy.deepcopy(render(plain))
    hpa = next(o for o in objs if o["kind"] == "HorizontalPodAutoscaler")
    hpa["spec"]["scaleTargetRef"]["name"] = "mistral"
    found = find_problems(objs, external=external_references(plain))
    assert found == [
        "HorizontalPodAutoscaler/corral-models/mistral-7b: scaleTargetRef "
        "Deployment/corral-models/mistral is not rendered"
    ]


def test_prometheus_adapter_rule_serves_the_hpa_metric() -> None:
    import yaml

    from corral.observability.promql import references

    values = yaml.safe_load((REPO / "deploy" / "prometheus" / "adapter-values.yaml").read_text())
    [rule] = values["rules"]["custom"]
    assert rule["name"]["as"] == HPA_METRIC
    assert rule["resources"]["overrides"]["pod"] == {"resource": "pod"}
    query = (
        rule["metricsQuery"]
        .replace("<<.LabelMatchers>>", 'namespace="corral-models",pod=~"mistral-7b-.*"')
        .replace("<<.GroupBy>>", "pod")
    )
    assert references(query).metrics == {"vllm:num_requests_running", "vllm:num_requests_waiting"}

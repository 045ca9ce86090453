"""Validation catches typos, wrong types, old Karpenter APIs and selectors that select nothing."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from corral.control.render.manifests import external_references, render
from corral.control.spec import DeploymentSpec, load_spec
from corral.control.validation.crds import compact_crd, to_jsonschema
from corral.control.validation.manifests import ensure_valid, find_problems
from corral.control.validation.references import check_references
from corral.errors import ConfigError

FIXTURES = Path(__file__).parents[2] / "fixtures" / "control"
SHARED_CRDS = Path("/work/shared/kubernetes/crds")


@pytest.fixture(scope="module")
def small() -> DeploymentSpec:
    return load_spec(FIXTURES / "specs" / "small-gpu.yaml")


def rendered(spec: DeploymentSpec) -> list[dict[str, Any]]:
    return copy.deepcopy(render(spec))


def by_kind(objs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    return next(o for o in objs if o["kind"] == kind)


def problems(spec: DeploymentSpec, objs: list[dict[str, Any]]) -> list[str]:
    return find_problems(objs, external=external_references(spec))


def test_v1beta1_consolidation_policy_is_refused(small: DeploymentSpec) -> None:
    objs = rendered(small)
    by_kind(objs, "NodePool")["spec"]["disruption"]["consolidationPolicy"] = "WhenUnderutilized"
    [problem] = problems(small, objs)
    assert problem.startswith("NodePool/corral-llama-8b: spec.disruption.consolidationPolicy")
    assert "'WhenEmptyOrUnderutilized'" in problem


def test_v1beta1_api_version_is_refused(small: DeploymentSpec) -> None:
    objs = rendered(small)
    by_kind(objs, "NodePool")["apiVersion"] = "karpenter.sh/v1beta1"
    found = problems(small, objs)
    assert any("karpenter.sh/v1beta1 NodePool is not a known version" in p for p in found)


def test_typo_in_crd_field_is_refused(small: DeploymentSpec) -> None:
    objs = rendered(small)
    by_kind(objs, "RayService")["spec"]["rayClusterConfig"]["workerGroupSpecs"][0]["minReplica"] = 1
    [problem] = problems(small, objs)
    assert "'minReplica' was unexpected" in problem


def test_typo_inside_crd_pod_template_is_refused(small: DeploymentSpec) -> None:
    objs = rendered(small)
    head = by_kind(objs, "RayService")["spec"]["rayClusterConfig"]["headGroupSpec"]
    head["template"]["spec"]["containers"][0]["resource"] = {}
    assert any("'resource' was unexpected" in p for p in problems(small, objs))


def test_wrong_type_in_builtin_is_refused(small: DeploymentSpec) -> None:
    objs = rendered(small)
    by_kind(objs, "Service")["spec"]["ports"][0]["port"] = "8000"
    [problem] = problems(small, objs)
    assert problem.startswith("Service/corral-models/llama-8b: spec.ports.0.port")


def test_typo_in_builtin_is_refused(small: DeploymentSpec) -> None:
    objs = rendered(small)
    by_kind(objs, "PodDisruptionBudget")["spec"]["maxUnavailabe"] = 1
    assert any("'maxUnavailabe' was unexpected" in p for p in problems(small, objs))


def test_service_selecting_nothing_is_refused(small: DeploymentSpec) -> None:
    objs = rendered(small)
    by_kind(objs, "Service")["spec"]["selector"] = {"corral.dev/deployment": "other"}
    [problem] = problems(small, objs)
    assert "matches no pod template" in problem


def test_missing_secret_and_nodepool_and_toleration_are_refused(small: DeploymentSpec) -> None:
    objs = [o for o in rendered(small) if o["kind"] not in ("EC2NodeClass",)]
    worker = by_kind(objs, "RayService")["spec"]["rayClusterConfig"]["workerGroupSpecs"][0]
    worker["template"]["spec"]["tolerations"] = []
    found = check_references(objs, external=["PriorityClass/corral-normal"])
    assert any("Secret/corral-models/hf-token" in p for p in found)
    assert any("nodeClassRef EC2NodeClass/corral-llama-8b is not rendered" in p for p in found)
    assert any("no toleration for taint nvidia.com/gpu" in p for p in found)


def test_podmonitor_port_must_exist(small: DeploymentSpec) -> None:
    objs = rendered(small)
    by_kind(objs, "PodMonitor")["spec"]["podMetricsEndpoints"][0]["port"] = "prometheus"
    assert any("port 'prometheus' is not a container port" in p for p in problems(small, objs))


def test_upstream_dcgm_servicemonitor_matches_nothing() -> None:
    objs = list(yaml.safe_load_all((FIXTURES / "upstream-dcgm.yaml").read_text()))
    assert find_problems(objs)[0].startswith(
        "ServiceMonitor/nvidia-device-plugin/dcgm-exporter: selector"
    )


def test_ensure_valid_lists_every_problem(small: DeploymentSpec) -> None:
    objs = rendered(small)
    by_kind(objs, "Service")["spec"]["ports"][0]["port"] = "x"
    by_kind(objs, "NodePool")["spec"]["weight"] = 1000
    with pytest.raises(ConfigError) as info:
        ensure_valid(objs, external=external_references(small))
    assert info.value.message.count("\n  ") == 2


def test_translation_handles_int_or_string_nullable_and_preserve() -> None:
    schema = to_jsonschema(
        {
            "type": "object",
            "properties": {
                "metadata": {"type": "object", "properties": {"name": {"type": "string"}}},
                "port": {"x-kubernetes-int-or-string": True},
                "note": {"type": "string", "nullable": True},
                "free": {
                    "type": "object",
                    "x-kubernetes-preserve-unknown-fields": True,
                    "properties": {},
                },
            },
        },
        strict=True,
    )
    assert schema["additionalProperties"] is False
    assert schema["properties"]["metadata"] == {"type": "object"}
    assert schema["properties"]["port"]["anyOf"] == [{"type": "integer"}, {"type": "string"}]
    assert schema["properties"]["note"]["type"] == ["string", "null"]
    assert "additionalProperties" not in schema["properties"]["free"]


@pytest.mark.skipif(not SHARED_CRDS.exists(), reason="upstream CRDs not present")
def test_packaged_schemas_match_upstream_crds() -> None:
    import json
    from importlib import resources

    packaged = resources.files("corral.control").joinpath("data/crds")
    for name in ("karpenter.sh_nodepools.aws", "karpenter.k8s.aws_ec2nodeclasses"):
        upstream = compact_crd(yaml.safe_load((SHARED_CRDS / f"{name}.yaml").read_text()))
        assert json.loads(packaged.joinpath(f"{name}.json").read_text()) == upstream

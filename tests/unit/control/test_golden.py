"""Representative specs render to the checked-in manifests, and those manifests validate."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from corral.control.planner.instances import load_price_table
from corral.control.preparation import prepare
from corral.control.render.manifests import dump_manifests, external_references
from corral.control.spec import load_spec
from corral.control.validation.manifests import find_problems

FIXTURES = Path(__file__).parents[2] / "fixtures" / "control"
SPECS = sorted((FIXTURES / "specs").glob("*.yaml"))
UPDATE = os.environ.get("CORRAL_UPDATE_GOLDENS") == "1"


@pytest.mark.parametrize("spec_path", SPECS, ids=[p.stem for p in SPECS])
def test_render_matches_golden_and_validates(spec_path: Path) -> None:
    spec = load_spec(spec_path)
    prepared = prepare(spec, load_price_table())
    objs = prepared.manifests
    text = dump_manifests(objs)
    golden = FIXTURES / "golden" / spec_path.name
    if UPDATE:
        golden.write_text(text)
    assert text == golden.read_text(), f"re-run with CORRAL_UPDATE_GOLDENS=1 if {golden} is stale"
    assert find_problems(objs, external=external_references(prepared.spec)) == []


def test_goldens_are_one_per_spec() -> None:
    goldens = sorted(p.name for p in (FIXTURES / "golden").glob("*.yaml"))
    assert goldens == [p.name for p in SPECS]


def kinds(name: str) -> list[str]:
    text = (FIXTURES / "golden" / name).read_text()
    return [doc["kind"] for doc in yaml.safe_load_all(text)]


def test_karpenter_spec_renders_nodes_before_workload() -> None:
    assert kinds("small-gpu.yaml") == [
        "Namespace",
        "ServiceAccount",
        "EC2NodeClass",
        "NodePool",
        "RayService",
        "Service",
        "PodDisruptionBudget",
        "NetworkPolicy",
        "PodMonitor",
    ]


def test_auto_mode_renders_its_own_nodeclass_and_a_servicemonitor() -> None:
    assert kinds("auto-mode.yaml") == [
        "Namespace",
        "ServiceAccount",
        "NodeClass",
        "NodePool",
        "Deployment",
        "Service",
        "PodDisruptionBudget",
        "NetworkPolicy",
        "ServiceMonitor",
    ]


def test_s3_mountpoint_renders_volume_and_claim() -> None:
    assert kinds("llama-70b-h100.yaml")[4:6] == ["PersistentVolume", "PersistentVolumeClaim"]


def test_cpu_dev_renders_no_nodes_and_no_monitors() -> None:
    assert "NodePool" not in kinds("cpu-dev.yaml")
    assert "ServiceMonitor" not in kinds("cpu-dev.yaml")


def test_plain_vllm_deployment_renders_its_autoscaler_after_the_deployment() -> None:
    assert kinds("vllm-deployment.yaml") == [
        "Namespace",
        "ServiceAccount",
        "EC2NodeClass",
        "NodePool",
        "Deployment",
        "HorizontalPodAutoscaler",
        "Service",
        "PodDisruptionBudget",
        "NetworkPolicy",
        "ServiceMonitor",
    ]

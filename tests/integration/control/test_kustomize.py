"""The platform's Kustomize overlays build with kubectl and every object validates."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from corral.control.validation.manifests import find_problems

KUSTOMIZE = Path(__file__).parents[3] / "deploy" / "kustomize"
KUBECTL = shutil.which("kubectl")
EXTERNAL = ["Secret/corral/corral-database"]

pytestmark = pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed")


def build(overlay: str) -> list[dict[str, object]]:
    assert KUBECTL is not None
    out = subprocess.run(
        [KUBECTL, "kustomize", str(KUSTOMIZE / "overlays" / overlay)],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def names(objs: list[dict[str, object]]) -> set[str]:
    return {f"{o['kind']}/{o['metadata']['name']}" for o in objs}  # type: ignore[index]


@pytest.mark.parametrize("overlay", ["dev", "eks"])
def test_overlay_builds_and_validates(overlay: str) -> None:
    objs = build(overlay)
    assert find_problems(objs, external=EXTERNAL) == []
    assert {
        "Deployment/corral-gateway",
        "Service/corral-gateway",
        "PriorityClass/corral-normal",
    } <= names(objs)


def test_eks_overlay_runs_gpu_agent_monitors_and_autoscaling() -> None:
    objs = build("eks")
    assert {
        "DaemonSet/corral-gpu-health",
        "DaemonSet/dcgm-exporter",
        "ServiceMonitor/dcgm-exporter",
        "PodMonitor/corral-gateway",
        "PodMonitor/corral-gpu-health",
        "HorizontalPodAutoscaler/corral-gateway",
    } <= names(objs)
    gateway = next(o for o in objs if o["kind"] == "Deployment")
    assert gateway["spec"]["replicas"] == 3  # type: ignore[index]


def test_dev_overlay_is_small() -> None:
    found = names(build("dev"))
    assert "DaemonSet/corral-gpu-health" not in found
    assert "HorizontalPodAutoscaler/corral-gateway" not in found
    assert "Secret/corral-database" in found


def test_gpu_health_podmonitor_scrapes_the_agent_metrics_port() -> None:
    import copy
    import inspect

    from corral.cli.health import agent

    objs = build("eks")
    monitor = next(o for o in objs if o["kind"] == "PodMonitor" and "gpu" in str(o["metadata"]))
    agent_ds = next(o for o in objs if o["kind"] == "DaemonSet" and "gpu-health" in str(o))
    [container] = agent_ds["spec"]["template"]["spec"]["containers"]  # type: ignore[index]
    [port] = [p for p in container["ports"] if p["name"] == "metrics"]
    default = inspect.signature(agent).parameters["metrics_port"].default
    assert port["containerPort"] == default == 9400
    [endpoint] = monitor["spec"]["podMetricsEndpoints"]  # type: ignore[index]
    assert endpoint["port"] == "metrics"
    assert monitor["metadata"]["namespace"] == agent_ds["metadata"]["namespace"] == "corral"  # type: ignore[index]
    relabel = endpoint["relabelings"][0]
    assert relabel == {"sourceLabels": ["__meta_kubernetes_pod_node_name"], "targetLabel": "node"}

    broken = copy.deepcopy(objs)
    wrong = next(o for o in broken if o["kind"] == "PodMonitor" and "gpu" in str(o["metadata"]))
    wrong["spec"]["selector"]["matchLabels"] = {"app.kubernetes.io/name": "gpu-health"}  # type: ignore[index]
    assert find_problems(broken, external=EXTERNAL) == [
        "PodMonitor/corral/corral-gpu-health: selector "
        "{'matchLabels': {'app.kubernetes.io/name': 'gpu-health'}} matches no pod template"
    ]


def test_gateway_metrics_are_scraped_on_their_own_port_never_through_the_service() -> None:
    from corral.settings import ServerSettings

    objs = build("eks")
    monitor = next(
        o
        for o in objs
        if o["kind"] == "PodMonitor" and o["metadata"]["name"] == "corral-gateway"  # type: ignore[index]
    )
    deployment = next(o for o in objs if o["kind"] == "Deployment")
    [container] = deployment["spec"]["template"]["spec"]["containers"]  # type: ignore[index]
    [port] = [p for p in container["ports"] if p["name"] == "metrics"]
    assert port["containerPort"] == ServerSettings().metrics_port
    [endpoint] = monitor["spec"]["podMetricsEndpoints"]  # type: ignore[index]
    assert endpoint["port"] == "metrics"
    assert monitor["spec"]["jobLabel"] == "app.kubernetes.io/name"  # job="corral-gateway"  # type: ignore[index]
    config = next(o for o in objs if o["kind"] == "ConfigMap" and "corral-config" in str(o))
    assert config["data"]["CORRAL_SERVER__METRICS_HOST"] == "0.0.0.0"  # type: ignore[index]
    assert config["data"]["CORRAL_SERVER__METRICS_PORT"] == str(port["containerPort"])  # type: ignore[index]
    service = next(
        o for o in objs if o["kind"] == "Service" and o["metadata"]["name"] == "corral-gateway"
    )  # type: ignore[index]
    assert [p["targetPort"] for p in service["spec"]["ports"]] == ["http"]  # type: ignore[index]

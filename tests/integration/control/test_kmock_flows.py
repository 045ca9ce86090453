"""The lightkube adapter and rollout flows against kmock's Kubernetes API emulator on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import kmock
import pytest

from corral.control.render.manifests import render
from corral.control.rollout import apply_all, cluster_status, undeploy
from corral.control.spec import load_spec
from corral.errors import PermanentError, TemporaryError
from corral.kube.lightkube_client import LightkubeClient
from support.kube_api import emulated_api, lightkube_on

SPECS = Path(__file__).parents[3] / "tests" / "fixtures" / "control" / "specs"
RESOURCES = {
    "v1/namespaces": ("Namespace", False),
    "v1/serviceaccounts": ("ServiceAccount", True),
    "v1/services": ("Service", True),
    "v1/nodes": ("Node", False),
    "v1/pods": ("Pod", True),
    "v1/events": ("Event", True),
    "v1/persistentvolumes": ("PersistentVolume", False),
    "v1/persistentvolumeclaims": ("PersistentVolumeClaim", True),
    "apps/v1/deployments": ("Deployment", True),
    "autoscaling/v2/horizontalpodautoscalers": ("HorizontalPodAutoscaler", True),
    "policy/v1/poddisruptionbudgets": ("PodDisruptionBudget", True),
    "networking.k8s.io/v1/networkpolicies": ("NetworkPolicy", True),
    "ray.io/v1/rayservices": ("RayService", True),
    "karpenter.sh/v1/nodepools": ("NodePool", False),
    "karpenter.k8s.aws/v1/ec2nodeclasses": ("EC2NodeClass", False),
    "monitoring.coreos.com/v1/podmonitors": ("PodMonitor", True),
    "monitoring.coreos.com/v1/servicemonitors": ("ServiceMonitor", True),
}


@pytest.fixture
async def api() -> AsyncIterator[kmock.KubernetesEmulator]:
    async with emulated_api(RESOURCES) as emulator:
        yield emulator


@pytest.fixture
async def kube(api: kmock.KubernetesEmulator) -> AsyncIterator[LightkubeClient]:
    async with lightkube_on(api) as client:
        yield client


def corral_objects(spec_name: str) -> list[dict[str, Any]]:
    """Rendered objects, less the Namespace: kmock cannot create namespaces (it parses
    ``/api/v1/namespaces`` as a namespaced path)."""
    objs = render(load_spec(SPECS / spec_name))
    return [o for o in objs if o["kind"] != "Namespace"]


def requests_of(api: kmock.KubernetesEmulator, method: str) -> list[Any]:
    return [r for r in api[method.lower()]]


async def test_deploy_is_idempotent_and_undeploy_removes_only_corral_objects(
    api: kmock.KubernetesEmulator, kube: LightkubeClient
) -> None:
    objs = corral_objects("small-gpu.yaml")
    await apply_all(kube, objs)
    stored = await kube.get("ray.io/v1", "RayService", "llama-8b", "corral-models")
    assert stored is not None
    assert "serveConfigV2" in stored["spec"]
    assert await kube.get("karpenter.sh/v1", "NodePool", "corral-llama-8b") is not None
    patches = [r for r in requests_of(api, "patch")]
    assert all(r.params.get("fieldManager") == "corral" for r in patches)

    before = {k: await kube.get(*k) for k in [("v1", "Service", "llama-8b", "corral-models")]}
    await apply_all(kube, objs)
    after = {k: await kube.get(*k) for k in before}
    assert before == after

    await kube.apply(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "other", "namespace": "corral-models"},
        }
    )
    deleted = await undeploy(kube, "llama-8b", "corral-models")
    assert {k.kind for k in deleted} >= {"RayService", "NodePool", "EC2NodeClass", "Service"}
    assert await kube.get("ray.io/v1", "RayService", "llama-8b", "corral-models") is None
    assert await kube.get("v1", "Service", "other", "corral-models") is not None


async def test_vllm_deployment_applies_its_autoscaler_and_undeploy_removes_it(
    kube: LightkubeClient,
) -> None:
    await apply_all(kube, corral_objects("vllm-deployment.yaml"))
    hpa = await kube.get("autoscaling/v2", "HorizontalPodAutoscaler", "mistral-7b", "corral-models")
    assert hpa is not None
    assert hpa["spec"]["scaleTargetRef"]["name"] == "mistral-7b"
    deployment = await kube.get("apps/v1", "Deployment", "mistral-7b", "corral-models")
    assert deployment is not None
    assert "replicas" not in deployment["spec"], "the HPA owns the replica count"

    deleted = await undeploy(kube, "mistral-7b", "corral-models")
    kinds = [k.kind for k in deleted]
    assert kinds.index("HorizontalPodAutoscaler") < kinds.index("Deployment")
    assert (
        await kube.get("autoscaling/v2", "HorizontalPodAutoscaler", "mistral-7b", "corral-models")
        is None
    )


async def test_status_reports_conditions(
    api: kmock.KubernetesEmulator, kube: LightkubeClient
) -> None:
    objs = corral_objects("small-gpu.yaml")
    await apply_all(kube, objs)
    ready = {"type": "Ready", "status": "False", "reason": "Pending", "message": "waiting for GPUs"}
    await kube.apply(
        {
            "apiVersion": "ray.io/v1",
            "kind": "RayService",
            "metadata": {"name": "llama-8b", "namespace": "corral-models"},
            "status": {"conditions": [ready]},
        }
    )
    deployments, _ = await cluster_status(kube, "corral-models")
    [status] = deployments
    assert status.readiness.detail == "Ready=False Pending: waiting for GPUs"
    assert status.readiness.conditions == [ready]


async def test_node_operations_reach_the_api(
    api: kmock.KubernetesEmulator, kube: LightkubeClient
) -> None:
    await kube.apply(
        {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "gpu-1"}, "spec": {}}
    )
    taint = {"key": "corral.dev/gpu-unhealthy", "value": "xid-79", "effect": "NoSchedule"}
    await kube.cordon("gpu-1", taint)
    node = await kube.get("v1", "Node", "gpu-1")
    assert node is not None
    assert node["spec"]["unschedulable"] is True
    assert node["spec"]["taints"] == [taint]
    await kube.emit_event(node, "GpuFault", "Xid 79", type="Warning")
    events = await kube.list("v1", "Event", "default")
    assert [(e["reason"], e["involvedObject"]["name"]) for e in events] == [("GpuFault", "gpu-1")]
    await kube.delete_node("gpu-1")
    assert await kube.get("v1", "Node", "gpu-1") is None
    with pytest.raises(PermanentError, match="does not exist"):
        await kube.cordon("gpu-1", None)


async def test_eviction_refused_by_a_budget_is_temporary(
    api: kmock.KubernetesEmulator, kube: LightkubeClient
) -> None:
    api["post", kmock.subresource("eviction")] << 429 << {"kind": "Status", "code": 429}
    with pytest.raises(TemporaryError, match="PodDisruptionBudget"):
        await kube.evict("p1", "serve")
    [request] = api["post", kmock.subresource("eviction")]
    assert request.data["metadata"] == {"name": "p1", "namespace": "serve"}


async def test_unknown_kind_is_permanent(kube: LightkubeClient) -> None:
    with pytest.raises(PermanentError, match="not a kind Corral knows"):
        await kube.get("example.com/v1", "Widget", "w")

"""Apply, wait, undeploy and status over FakeKube."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from corral.clock import FakeClock
from corral.control.render.manifests import render
from corral.control.rollout import (
    Readiness,
    apply_all,
    apply_order,
    cluster_status,
    readiness,
    undeploy,
    wait_ready,
)
from corral.control.spec import load_spec
from corral.errors import PermanentError, TemporaryError
from corral.kube.fake import FakeKube
from corral.kube.port import ObjectKey

SPECS = Path(__file__).parents[2] / "fixtures" / "control" / "specs"
RAYSERVICE = ObjectKey("ray.io/v1", "RayService", "llama-8b", "corral-models")


@pytest.fixture
def objs() -> list[dict[str, object]]:
    return render(load_spec(SPECS / "small-gpu.yaml"))


async def test_apply_goes_in_dependency_order_and_is_idempotent(
    objs: list[dict[str, object]],
) -> None:
    kube = FakeKube()
    first = await apply_all(kube, list(reversed(objs)))
    assert [a.key.kind for a in first][:4] == [
        "Namespace",
        "ServiceAccount",
        "EC2NodeClass",
        "NodePool",
    ]
    assert all(a.changed for a in first)
    applied = [args[0].kind for verb, args in kube.calls if verb == "apply"]
    assert applied.index("NodePool") < applied.index("RayService") < applied.index("Service")
    second = await apply_all(kube, objs)
    assert not any(a.changed for a in second)


async def test_undeploy_removes_only_corral_objects_of_that_deployment(
    objs: list[dict[str, object]],
) -> None:
    kube = FakeKube()
    await apply_all(kube, objs)
    stranger = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": "keep-me",
            "namespace": "corral-models",
            "labels": {"corral.dev/deployment": "llama-8b"},
        },
    }
    await kube.apply(stranger)
    deleted = await undeploy(kube, "llama-8b", "corral-models")
    kinds = [k.kind for k in deleted]
    assert kinds[0] == "PodMonitor"
    assert kinds.index("RayService") < kinds.index("NodePool") < kinds.index("EC2NodeClass")
    remaining = {(k.kind, k.name) for k in kube.objects}
    assert remaining == {("Namespace", "corral-models"), ("Service", "keep-me")}


async def test_wait_ready_reports_progress_until_ready(objs: list[dict[str, object]]) -> None:
    kube, clock = FakeKube(), FakeClock()
    await apply_all(kube, objs)
    seen: list[str] = []

    def progress(state: Readiness) -> None:
        seen.append(state.detail)
        if len(seen) == 1:
            kube.set_status(
                RAYSERVICE,
                {"conditions": [{"type": "Ready", "status": "True", "reason": "Running"}]},
            )

    state = await wait_ready(kube, RAYSERVICE, clock, poll_s=5, progress=progress)
    assert state.ready
    assert seen == ["serviceStatus=unknown", "Ready=True Running:"]
    assert clock.monotonic() == 5


async def test_wait_ready_times_out_with_the_failing_condition(
    objs: list[dict[str, object]],
) -> None:
    kube, clock = FakeKube(), FakeClock()
    await apply_all(kube, objs)
    failing = {"type": "Ready", "status": "False", "reason": "Pending", "message": "no GPU nodes"}
    kube.set_status(RAYSERVICE, {"conditions": [failing]})
    with pytest.raises(TemporaryError) as info:
        await wait_ready(kube, RAYSERVICE, clock, timeout_s=60, poll_s=10)
    assert "not ready after 60 s" in info.value.message
    assert "Ready=False Pending: no GPU nodes" in info.value.message
    assert clock.monotonic() == 60


def test_deployment_readiness_counts_available_replicas() -> None:
    obj = {"kind": "Deployment", "spec": {"replicas": 2}, "status": {"availableReplicas": 1}}
    assert readiness(obj) == Readiness(False, "1/2 replicas available")
    assert readiness(None).detail == "not found"


async def test_status_lists_deployments_and_accelerator_nodes(
    objs: list[dict[str, object]],
) -> None:
    kube = FakeKube()
    await apply_all(kube, objs)
    kube.add_node("gpu-1", {"corral.dev/accelerator": "l4"})
    kube.add_node("cpu-1")
    await kube.cordon("gpu-1", None)
    deployments, nodes = await cluster_status(kube)
    assert [(d.name, d.kind, d.readiness.ready) for d in deployments] == [
        ("llama-8b", "RayService", False)
    ]
    assert [(n.name, n.accelerator, n.schedulable) for n in nodes] == [("gpu-1", "l4", False)]


def test_apply_order_keeps_unknown_kinds_last() -> None:
    objs = [{"kind": "Widget"}, {"kind": "Service"}, {"kind": "Namespace"}]
    assert [o["kind"] for o in apply_order(objs)] == ["Namespace", "Service", "Widget"]


# Issue 18: corral status says which accelerator nodes cannot give pods their devices, and why.
def _gpu_node(kube: FakeKube, name: str, labels: dict[str, str], status: dict[str, object]) -> None:
    kube.add_node(name, {"node.kubernetes.io/instance-type": "g6.12xlarge", **labels})
    kube.set_status(ObjectKey("v1", "Node", name), status)


def _gpus(capacity: int, allocatable: int) -> dict[str, object]:
    return {
        "capacity": {"nvidia.com/gpu": str(capacity)},
        "allocatable": {"nvidia.com/gpu": str(allocatable)},
        "conditions": [{"type": "Ready", "status": "True"}],
    }


async def test_status_explains_nodes_whose_gpus_are_not_allocatable() -> None:
    kube = FakeKube()
    _gpu_node(kube, "healthy", {}, _gpus(4, 4))
    _gpu_node(kube, "no-plugin", {}, {"conditions": []})
    _gpu_node(kube, "no-driver", {}, {"conditions": []})
    _gpu_node(kube, "auto", {"eks.amazonaws.com/compute-type": "auto"}, {})
    _gpu_node(kube, "one-bad", {}, _gpus(4, 3))
    _gpu_node(kube, "missing-one", {}, _gpus(3, 3))
    kube.add_pod(
        "plugin-x", "kube-system", "no-driver", {"app.kubernetes.io/name": "nvidia-device-plugin"}
    )
    kube.add_node("cpu-1", {"node.kubernetes.io/instance-type": "m7i.2xlarge"})
    _, nodes = await cluster_status(kube)
    found = {n.name: n.devices for n in nodes}
    assert set(found) == {"healthy", "no-plugin", "no-driver", "auto", "one-bad", "missing-one"}
    assert found["healthy"] is not None
    assert (found["healthy"].allocatable, found["healthy"].problem) == (4, "")
    problems = {name: d.problem for name, d in found.items() if d is not None}
    assert "no device plugin advertises nvidia.com/gpu" in problems["no-plugin"]
    assert (
        "runs but advertises no nvidia.com/gpu: the driver is not loaded" in problems["no-driver"]
    )
    assert "EKS Auto Mode has not advertised" in problems["auto"]
    assert "1 of 4 nvidia.com/gpu unhealthy" in problems["one-bad"]
    assert "only 3 of 4 nvidia.com/gpu advertised" in problems["missing-one"]


class NoLeaderWorkerSetCrd(FakeKube):
    """A cluster without the LeaderWorkerSet CRD: listing that kind fails as the API would."""

    async def list(self, api_version: str, kind: str, *args: Any, **kwargs: Any) -> Any:
        if kind == "LeaderWorkerSet":
            raise PermanentError("list LeaderWorkerSet: the server could not find the resource")
        return await super().list(api_version, kind, *args, **kwargs)


async def test_multi_node_and_auto_mode_objects_apply_in_order_and_undeploy() -> None:
    lws = render(load_spec(SPECS / "llama-405b-lws-efa.yaml"))
    auto = render(load_spec(SPECS / "auto-mode.yaml"))
    kinds = [o["kind"] for o in apply_order(list(reversed(lws)))]
    assert kinds.index("LeaderWorkerSet") < kinds.index("Service")
    auto_kinds = [o["kind"] for o in apply_order(list(reversed(auto)))]
    assert auto_kinds.index("NodeClass") < auto_kinds.index("NodePool")
    kube = FakeKube()
    await apply_all(kube, lws + auto)
    deleted = {k.kind for k in await undeploy(kube, "llama-405b-lws", "corral-models")}
    assert "LeaderWorkerSet" in deleted
    deleted = {k.kind for k in await undeploy(kube, "qwen-7b", "corral-models")}
    assert "NodeClass" in deleted


async def test_undeploy_and_status_work_without_the_leaderworkerset_crd(
    objs: list[dict[str, object]],
) -> None:
    kube = NoLeaderWorkerSetCrd()
    await apply_all(kube, objs)
    deployments, _ = await cluster_status(kube)
    assert [d.kind for d in deployments] == ["RayService"]
    assert await undeploy(kube, "llama-8b", "corral-models")


def test_leaderworkerset_readiness_counts_ready_groups() -> None:
    obj = {"kind": "LeaderWorkerSet", "spec": {"replicas": 2}, "status": {"readyReplicas": 1}}
    assert readiness(obj) == Readiness(False, "1/2 groups ready")


async def test_status_names_the_neuron_plugin_and_bottlerocket_cases() -> None:
    kube = FakeKube()
    kube.add_node("inf", {"node.kubernetes.io/instance-type": "inf2.48xlarge"})
    kube.add_node(
        "br",
        {"node.kubernetes.io/instance-type": "g6.xlarge", "corral.dev/ami-family": "bottlerocket"},
    )
    _, nodes = await cluster_status(kube)
    found = {n.name: n.devices for n in nodes}
    assert found["inf"] is not None
    assert found["inf"].resource == "aws.amazon.com/neuron"
    assert found["inf"].expected == 12
    assert "neuron-device-plugin" in found["inf"].problem
    assert found["br"] is not None
    assert "Bottlerocket's built-in NVIDIA device plugin" in found["br"].problem

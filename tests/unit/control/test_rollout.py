"""Apply, wait, undeploy and status over FakeKube."""

from __future__ import annotations

from pathlib import Path

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
from corral.errors import TemporaryError
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

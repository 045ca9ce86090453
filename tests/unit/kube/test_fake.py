"""FakeKube behaves like the KubeClient port promises and records calls in order."""

from __future__ import annotations

import asyncio

import pytest

from corral.errors import PermanentError, TemporaryError
from corral.kube.fake import FakeKube
from corral.kube.port import KubeClient, ObjectKey

GPU_TAINT = {"key": "corral.dev/gpu-unhealthy", "value": "xid-79", "effect": "NoSchedule"}


def configmap(data: dict[str, str], labels: dict[str, str] | None = None) -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "cm", "namespace": "ns", "labels": labels or {}},
        "data": data,
    }


def test_fake_satisfies_the_port() -> None:
    client: KubeClient = FakeKube()
    assert client is not None


async def test_apply_creates_then_is_idempotent_then_updates() -> None:
    kube = FakeKube()
    first = await kube.apply(configmap({"a": "1"}))
    again = await kube.apply(configmap({"a": "1"}))
    assert again["metadata"]["resourceVersion"] == first["metadata"]["resourceVersion"]
    changed = await kube.apply(configmap({"a": "2"}))
    assert changed["metadata"]["resourceVersion"] != first["metadata"]["resourceVersion"]
    stored = await kube.get("v1", "ConfigMap", "cm", "ns")
    assert stored is not None
    assert stored["data"] == {"a": "2"}
    assert kube.verbs() == ["apply", "apply", "apply", "get"]


async def test_get_missing_is_none_and_delete_missing_is_quiet() -> None:
    kube = FakeKube()
    assert await kube.get("v1", "ConfigMap", "nope", "ns") is None
    await kube.delete("v1", "ConfigMap", "nope", "ns")
    assert kube.calls[-1] == ("delete", (ObjectKey("v1", "ConfigMap", "nope", "ns"),))


async def test_list_filters_by_namespace_and_labels() -> None:
    kube = FakeKube()
    await kube.apply(configmap({}, {"app": "a"}))
    other = configmap({}, {"app": "b"})
    other["metadata"] = {"name": "cm2", "namespace": "other", "labels": {"app": "b"}}
    await kube.apply(other)
    assert [o["metadata"]["name"] for o in await kube.list("v1", "ConfigMap")] == ["cm", "cm2"]
    assert [o["metadata"]["name"] for o in await kube.list("v1", "ConfigMap", "other")] == ["cm2"]
    picked = await kube.list("v1", "ConfigMap", label_selector={"app": "a"})
    assert [o["metadata"]["name"] for o in picked] == ["cm"]


async def test_node_drain_sequence_is_recorded_in_order() -> None:
    kube = FakeKube()
    kube.add_node("n1")
    kube.add_pod("p1", "serve", "n1")
    kube.add_pod("p2", "serve", "n2")
    await kube.cordon("n1", GPU_TAINT)
    await kube.cordon("n1", GPU_TAINT)
    pods = await kube.list_pods_on_node("n1")
    assert [p["metadata"]["name"] for p in pods] == ["p1"]
    await kube.evict("p1", "serve")
    await kube.delete_node("n1")
    assert kube.calls == [
        ("cordon", ("n1", GPU_TAINT)),
        ("cordon", ("n1", GPU_TAINT)),
        ("list_pods_on_node", ("n1",)),
        ("evict", ("p1", "serve")),
        ("delete_node", ("n1",)),
    ]
    assert await kube.get("v1", "Pod", "p1", "serve") is None
    assert await kube.get("v1", "Node", "n1") is None


async def test_cordon_sets_unschedulable_and_one_taint_and_uncordon_reverts() -> None:
    kube = FakeKube()
    kube.add_node("n1")
    await kube.cordon("n1", GPU_TAINT)
    await kube.cordon("n1", GPU_TAINT)
    node = kube.objects[ObjectKey("v1", "Node", "n1")]
    assert node["spec"]["unschedulable"] is True
    assert node["spec"]["taints"] == [GPU_TAINT]
    await kube.uncordon("n1", GPU_TAINT["key"])
    assert "unschedulable" not in node["spec"]
    assert node["spec"]["taints"] == []


async def test_refused_evictions_raise_temporary_error_n_times() -> None:
    kube = FakeKube()
    kube.add_node("n1")
    kube.add_pod("p1", "serve", "n1")
    kube.refuse_evictions(2, delay=7.5)
    for _ in range(2):
        with pytest.raises(TemporaryError) as info:
            await kube.evict("p1", "serve")
        assert info.value.delay == 7.5
        assert "PodDisruptionBudget" in info.value.message
    await kube.evict("p1", "serve")
    assert kube.verbs() == ["evict", "evict", "evict"]
    assert await kube.get("v1", "Pod", "p1", "serve") is None


async def test_fail_knob_raises_the_given_error_once() -> None:
    kube = FakeKube()
    kube.fail("apply", PermanentError("forbidden"))
    with pytest.raises(PermanentError):
        await kube.apply(configmap({}))
    await kube.apply(configmap({}))
    assert kube.verbs() == ["apply", "apply"]


async def test_node_operation_on_missing_node_is_permanent() -> None:
    with pytest.raises(PermanentError, match="does not exist"):
        await FakeKube().cordon("ghost", None)


async def test_set_node_condition_replaces_by_type_and_keeps_transition_time() -> None:
    kube = FakeKube()
    kube.add_node("n1")
    await kube.set_node_condition("n1", "GpuHealthy", "False", "Xid79", "fell off the bus")
    await kube.set_node_condition("n1", "GpuHealthy", "False", "Xid79", "still off")
    node = kube.objects[ObjectKey("v1", "Node", "n1")]
    conditions = node["status"]["conditions"]
    assert len(conditions) == 1
    assert conditions[0]["message"] == "still off"
    assert conditions[0]["lastTransitionTime"] == "2023-11-14T22:13:20Z"


async def test_emit_event_keeps_a_reference_to_the_involved_object() -> None:
    kube = FakeKube()
    node = kube.add_node("n1")
    await kube.emit_event(node, "GpuFault", "Xid 79 on GPU 0", type="Warning")
    assert len(kube.events) == 1
    event = kube.events[0]
    assert event["involvedObject"]["kind"] == "Node"
    assert event["involvedObject"]["name"] == "n1"
    assert (event["reason"], event["type"]) == ("GpuFault", "Warning")
    assert kube.calls[-1][0] == "emit_event"


async def test_watch_yields_existing_then_changes() -> None:
    kube = FakeKube()
    await kube.apply(configmap({"a": "1"}))
    stream = kube.watch("v1", "ConfigMap", "ns")
    first = await anext(stream)
    assert (first.type, first.object["data"]) == ("ADDED", {"a": "1"})
    await kube.apply(configmap({"a": "2"}))
    second = await asyncio.wait_for(anext(stream), 1)
    assert (second.type, second.object["data"]) == ("MODIFIED", {"a": "2"})
    await kube.delete("v1", "ConfigMap", "cm", "ns")
    third = await asyncio.wait_for(anext(stream), 1)
    assert third.type == "DELETED"
    await stream.aclose()

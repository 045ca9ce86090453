"""Apply a deployment's manifests in dependency order, wait until it serves, undeploy, status."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from corral.clock import Clock
from corral.control.accelerators import ACCELERATORS
from corral.control.node_devices import (
    ACCELERATOR_LABEL,
    DEVICE_PLUGINS,
    NodeDevices,
    expected_device,
    node_devices,
)
from corral.control.planner.instances import PriceTable, load_price_table
from corral.errors import PermanentError, TemporaryError
from corral.kube.port import KubeClient, Manifest, ObjectKey

APPLY_ORDER = (
    "Namespace",
    "PriorityClass",
    "ServiceAccount",
    "ConfigMap",
    "Secret",
    "EC2NodeClass",
    "NodeClass",
    "NodePool",
    "PersistentVolume",
    "PersistentVolumeClaim",
    "RayService",
    "Deployment",
    "LeaderWorkerSet",
    "HorizontalPodAutoscaler",
    "Service",
    "PodDisruptionBudget",
    "NetworkPolicy",
    "PodMonitor",
    "ServiceMonitor",
)
"""Things an object refers to come before it; undeploy deletes in the reverse order."""

OWNED_KINDS: tuple[tuple[str, str, bool], ...] = (
    ("karpenter.k8s.aws/v1", "EC2NodeClass", False),
    ("eks.amazonaws.com/v1", "NodeClass", False),
    ("karpenter.sh/v1", "NodePool", False),
    ("v1", "PersistentVolume", False),
    ("v1", "PersistentVolumeClaim", True),
    ("v1", "ServiceAccount", True),
    ("ray.io/v1", "RayService", True),
    ("apps/v1", "Deployment", True),
    ("leaderworkerset.x-k8s.io/v1", "LeaderWorkerSet", True),
    ("autoscaling/v2", "HorizontalPodAutoscaler", True),
    ("v1", "Service", True),
    ("policy/v1", "PodDisruptionBudget", True),
    ("networking.k8s.io/v1", "NetworkPolicy", True),
    ("monitoring.coreos.com/v1", "PodMonitor", True),
    ("monitoring.coreos.com/v1", "ServiceMonitor", True),
)
"""Kinds Corral renders per deployment: (apiVersion, kind, namespaced)."""

OPTIONAL_KINDS = frozenset({"NodeClass", "LeaderWorkerSet"})
"""Kinds whose CRD only some clusters have (EKS Auto Mode; LeaderWorkerSet): where listing them
fails, the cluster has none of them and there is nothing to delete or show."""


async def _list_owned(
    kube: KubeClient, api_version: str, kind: str, namespace: str | None, selector: dict[str, str]
) -> list[Manifest]:
    try:
        return await kube.list(api_version, kind, namespace, selector)
    except PermanentError:
        if kind in OPTIONAL_KINDS:
            return []
        raise


def owner_selector(name: str) -> dict[str, str]:
    """Labels that mark an object as rendered by Corral for deployment ``name``."""
    return {"app.kubernetes.io/managed-by": "corral", "corral.dev/deployment": name}


def apply_order(objs: list[Manifest]) -> list[Manifest]:
    """The objects sorted so that dependencies are applied first (stable for unknown kinds)."""
    rank = {kind: i for i, kind in enumerate(APPLY_ORDER)}
    return sorted(objs, key=lambda o: rank.get(o["kind"], len(APPLY_ORDER)))


@dataclass(frozen=True, slots=True)
class Applied:
    """What applying one object did."""

    key: ObjectKey
    changed: bool


async def apply_all(kube: KubeClient, objs: list[Manifest]) -> list[Applied]:
    """Server-side apply every object in order; ``changed`` is False when nothing moved."""
    results = []
    for obj in apply_order(objs):
        key = ObjectKey.of(obj)
        before = await kube.get(key.api_version, key.kind, key.name, key.namespace)
        after = await kube.apply(obj)
        version = (before or {}).get("metadata", {}).get("resourceVersion")
        results.append(
            Applied(key, before is None or after["metadata"].get("resourceVersion") != version)
        )
    return results


async def undeploy(kube: KubeClient, name: str, namespace: str) -> list[ObjectKey]:
    """Delete the objects Corral rendered for ``name`` (by owner labels), nothing else."""
    selector = owner_selector(name)
    deleted = []
    for api_version, kind, namespaced in reversed(OWNED_KINDS):
        found = await _list_owned(
            kube, api_version, kind, namespace if namespaced else None, selector
        )
        for obj in found:
            key = ObjectKey.of(obj)
            await kube.delete(api_version, kind, key.name, key.namespace)
            deleted.append(key)
    return deleted


@dataclass(frozen=True, slots=True)
class Readiness:
    """Whether a workload serves, and why not."""

    ready: bool
    detail: str
    conditions: list[dict[str, Any]] = field(default_factory=list)


def readiness(obj: Manifest | None) -> Readiness:
    """Read a RayService's, Deployment's or LeaderWorkerSet's status."""
    if obj is None:
        return Readiness(False, "not found")
    status = obj.get("status") or {}
    conditions = list(status.get("conditions") or [])
    if obj["kind"] == "Deployment":
        want = obj.get("spec", {}).get("replicas", 1)
        have = status.get("availableReplicas", 0)
        return Readiness(have >= want, f"{have}/{want} replicas available", conditions)
    if obj["kind"] == "LeaderWorkerSet":
        want = obj.get("spec", {}).get("replicas", 1)
        have = status.get("readyReplicas", 0)
        return Readiness(have >= want, f"{have}/{want} groups ready", conditions)
    ready = next((c for c in conditions if c.get("type") == "Ready"), None)
    if ready is not None:
        detail = (
            f"Ready={ready.get('status')} {ready.get('reason', '')}: {ready.get('message', '')}"
        )
        return Readiness(ready.get("status") == "True", detail.strip(), conditions)
    service_status = status.get("serviceStatus", "")
    return Readiness(
        service_status == "Running", f"serviceStatus={service_status or 'unknown'}", conditions
    )


async def wait_ready(
    kube: KubeClient,
    workload: ObjectKey,
    clock: Clock,
    *,
    timeout_s: float = 1800.0,
    poll_s: float = 10.0,
    progress: Callable[[Readiness], None] | None = None,
) -> Readiness:
    """Poll until the workload serves; TemporaryError with the last condition on timeout."""
    deadline = clock.monotonic() + timeout_s
    last = ""
    while True:
        obj = await kube.get(workload.api_version, workload.kind, workload.name, workload.namespace)
        state = readiness(obj)
        if progress is not None and state.detail != last:
            progress(state)
        last = state.detail
        if state.ready:
            return state
        if clock.monotonic() >= deadline:
            raise TemporaryError(
                f"{workload} is not ready after {timeout_s:.0f} s; last status: {state.detail}. "
                "Check `kubectl describe` on it and its pods (image pulls, GPU capacity, quotas).",
                delay=poll_s,
            )
        await clock.sleep(poll_s)


@dataclass(frozen=True, slots=True)
class DeploymentStatus:
    """One Corral deployment as ``corral status`` shows it."""

    name: str
    namespace: str
    kind: str
    readiness: Readiness


@dataclass(frozen=True, slots=True)
class NodeStatus:
    """One accelerator node."""

    name: str
    accelerator: str
    ready: bool
    schedulable: bool
    devices: NodeDevices | None = None
    """Its devices against its instance type (None when the type is not in the table)."""


async def cluster_status(
    kube: KubeClient, namespace: str | None = None, table: PriceTable | None = None
) -> tuple[list[DeploymentStatus], list[NodeStatus]]:
    """Corral's deployments (RayServices and Deployments it manages) and accelerator nodes."""
    managed = {"app.kubernetes.io/managed-by": "corral"}
    found = []
    workloads = (
        ("ray.io/v1", "RayService"),
        ("apps/v1", "Deployment"),
        ("leaderworkerset.x-k8s.io/v1", "LeaderWorkerSet"),
    )
    for api_version, kind in workloads:
        for obj in await _list_owned(kube, api_version, kind, namespace, managed):
            meta = obj["metadata"]
            found.append(
                DeploymentStatus(meta["name"], meta.get("namespace", ""), kind, readiness(obj))
            )
    return found, await accelerator_nodes(kube, table or load_price_table())


async def accelerator_nodes(kube: KubeClient, table: PriceTable) -> list[NodeStatus]:
    """Nodes Corral's NodePools made or whose instance type carries accelerators, with whether
    their devices are allocatable (and why not)."""
    plugins = await _plugin_nodes(kube)
    nodes = []
    for node in await kube.list("v1", "Node"):
        labels = node["metadata"].get("labels", {})
        instance = expected_device(node, table)
        if instance is None and ACCELERATOR_LABEL not in labels:
            continue
        conditions = node.get("status", {}).get("conditions", [])
        ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)
        schedulable = not node.get("spec", {}).get("unschedulable", False)
        name = node["metadata"]["name"]
        devices = None
        if instance is not None:
            vendor = ACCELERATORS[instance.accelerator].vendor
            devices = node_devices(node, instance, (name, vendor) in plugins)
        accel = labels.get(ACCELERATOR_LABEL) or (instance.accelerator if instance else "")
        nodes.append(NodeStatus(name, accel, ready, schedulable, devices))
    return nodes


async def _plugin_nodes(kube: KubeClient) -> set[tuple[str, str]]:
    """(node, vendor) pairs where that vendor's device-plugin pod is running."""
    out = set()
    for vendor, app in DEVICE_PLUGINS.items():
        for pod in await kube.list("v1", "Pod", None, {"app.kubernetes.io/name": app}):
            if pod.get("status", {}).get("phase", "Running") == "Running":
                out.add((pod.get("spec", {}).get("nodeName", ""), vendor))
    return out

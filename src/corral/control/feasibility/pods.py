"""Does each accelerator pod fit an instance type its NodePool may launch?

Requests (CPU, memory, devices, EFA, ephemeral storage) against allocatable; tolerations against
the NodePool's taints; nodeSelector against the NodePool's labels and requirements.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from corral.control.accelerators import ACCELERATORS
from corral.control.feasibility.quantities import GIB, parse_quantity
from corral.control.feasibility.report import Problem
from corral.control.planner.instances import InstanceType, PriceTable, allocatable_cpu_memory
from corral.kube.port import Manifest

NODEPOOL_LABEL = "karpenter.sh/nodepool"


@dataclass(frozen=True, slots=True)
class PodTemplate:
    """A pod template found in the manifests, with where it came from."""

    where: str
    spec: dict[str, Any]


def pod_templates(objs: list[Manifest]) -> Iterator[PodTemplate]:
    """Accelerator-bound pod templates: RayService worker groups, Deployments, LeaderWorkerSet
    leaders and workers."""
    for obj in objs:
        name = obj["metadata"]["name"]
        if obj["kind"] == "RayService":
            for group in obj["spec"]["rayClusterConfig"].get("workerGroupSpecs", []):
                yield PodTemplate(f"RayService/{name} {group['groupName']}", group["template"])
        elif obj["kind"] == "Deployment":
            yield PodTemplate(f"Deployment/{name}", obj["spec"]["template"])
        elif obj["kind"] == "LeaderWorkerSet":
            lws = obj["spec"]["leaderWorkerTemplate"]
            if "leaderTemplate" in lws:
                yield PodTemplate(f"LeaderWorkerSet/{name} leader", lws["leaderTemplate"])
            yield PodTemplate(f"LeaderWorkerSet/{name} worker", lws["workerTemplate"])


def allocatable(instance: InstanceType, disk_gib: float) -> dict[str, float]:
    """What the kubelet offers pods on ``instance`` (``allocatable_cpu_memory``), its devices,
    EFA interfaces, and its data filesystem as ephemeral storage."""
    cpu, memory_gib = allocatable_cpu_memory(instance)
    neuron = ACCELERATORS[instance.accelerator].vendor == "neuron"
    return {
        "cpu": cpu,
        "memory": memory_gib * GIB,
        "nvidia.com/gpu": 0 if neuron else instance.count,
        "aws.amazon.com/neuron": instance.count if neuron else 0,
        "vpc.amazonaws.com/efa": instance.efa,
        "ephemeral-storage": disk_gib * GIB,
    }


def pod_requests(pod: dict[str, Any]) -> dict[str, float]:
    """The pod's effective requests: sum over containers, at least the largest init container
    (Kubernetes' rule); limits stand in for requests a container leaves unset."""
    total: dict[str, float] = {}
    for container in pod["spec"].get("containers", []):
        for key, value in _container_requests(container).items():
            total[key] = total.get(key, 0.0) + value
    for init in pod["spec"].get("initContainers", []):
        for key, value in _container_requests(init).items():
            total[key] = max(total.get(key, 0.0), value)
    return total


def _container_requests(container: dict[str, Any]) -> dict[str, float]:
    resources = container.get("resources", {})
    merged = {**resources.get("limits", {}), **resources.get("requests", {})}
    return {k: parse_quantity(v) for k, v in merged.items()}


def tolerates(tolerations: list[dict[str, Any]], taint: dict[str, Any]) -> bool:
    """Kubernetes' ``ToleratesTaint`` (k8s.io/api/core/v1/toleration.go)."""
    for tol in tolerations:
        if tol.get("effect") and tol["effect"] != taint["effect"]:
            continue
        if tol.get("key") and tol["key"] != taint["key"]:
            continue
        if not tol.get("key") and tol.get("operator") != "Exists":
            continue
        if tol.get("operator", "Equal") == "Exists" or tol.get("value") == taint.get("value"):
            return True
    return False


def nodepool_instances(pool: Manifest, table: PriceTable) -> list[InstanceType]:
    """Instance types in the table the NodePool's requirements allow."""
    found = list(table.instances)
    for req in pool["spec"]["template"]["spec"].get("requirements", []):
        if req.get("operator") != "In":
            continue
        key, values = req["key"], set(req["values"])
        if key.endswith("/instance-gpu-name"):
            found = [i for i in found if i.accelerator in values]
        elif key.endswith("/instance-family"):
            found = [i for i in found if i.family in values]
        elif key == "node.kubernetes.io/instance-type":
            found = [i for i in found if i.name in values]
    return found


def selector_problems(where: str, pod: dict[str, Any], pool: Manifest) -> list[Problem]:
    template = pool["spec"]["template"]
    labels = {
        NODEPOOL_LABEL: pool["metadata"]["name"],
        **template.get("metadata", {}).get("labels", {}),
    }
    offered = {
        r["key"]: set(r["values"])
        for r in template["spec"].get("requirements", [])
        if r.get("operator") == "In"
    }
    out = []
    for key, value in pod["spec"].get("nodeSelector", {}).items():
        if labels.get(key) != value and value not in offered.get(key, set()):
            out.append(
                Problem(
                    "pod-fit",
                    f"{where}: nodeSelector {key}={value} matches no node NodePool "
                    f"{pool['metadata']['name']} makes",
                    "select a label the NodePool's template or requirements set",
                )
            )
    return out


def taint_problems(where: str, pod: dict[str, Any], pool: Manifest) -> list[Problem]:
    tolerations = pod["spec"].get("tolerations", [])
    return [
        Problem(
            "pod-fit",
            f"{where}: does not tolerate taint {taint['key']}:{taint['effect']} of NodePool "
            f"{pool['metadata']['name']}",
            f"add a toleration for {taint['key']}",
        )
        for taint in pool["spec"]["template"]["spec"].get("taints", [])
        if taint["effect"] in ("NoSchedule", "NoExecute") and not tolerates(tolerations, taint)
    ]


def shortfall(requests: dict[str, float], offer: dict[str, float]) -> list[str]:
    """Each request the offer cannot meet, as ``name requested > allocatable``."""
    out = []
    for key, want in requests.items():
        have = offer.get(key)
        if have is None or want <= have + 1e-9:
            continue
        out.append(f"{key} {_show(key, want)} > {_show(key, have)}")
    return out


def _show(key: str, value: float) -> str:
    if key in ("memory", "ephemeral-storage"):
        return f"{value / GIB:.1f}Gi"
    return f"{value:g}"

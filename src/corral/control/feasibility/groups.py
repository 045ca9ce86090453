"""Multi-node replicas: a group of pods, one per node, that together hold one replica.

Each group must carry the devices the engine's TP × PP needs, reach its peers over EFA, stay in
one availability zone, and fit under its NodePool's device limit at max replicas. Whether each
pod fits an instance is ``pods``' check; whether Ray can place the replica's bundles on the
worker group is ``binpack``'s.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import Any

import yaml

from corral.control.feasibility.pods import NODEPOOL_LABEL, pod_requests
from corral.control.feasibility.quantities import parse_quantity
from corral.control.feasibility.report import Problem
from corral.kube.port import Manifest

EFA_RESOURCE = "vpc.amazonaws.com/efa"
ZONE_KEY = "topology.kubernetes.io/zone"
DEVICE_RESOURCES = ("nvidia.com/gpu", "aws.amazon.com/neuron")


@dataclass(frozen=True, slots=True)
class Group:
    """One replica's pods as rendered: how many, each pod's template, and what the engine runs."""

    where: str
    hosts: int
    pods: list[dict[str, Any]]
    """Pod templates of the group (a LeaderWorkerSet has a leader's and a worker's)."""
    parallel: int
    """TP × PP the engine is configured with: the devices the replica needs in all."""
    max_replicas: int


def groups(objs: list[Manifest]) -> list[Group]:
    """Every multi-node group in the manifests (RayService worker groups with numOfHosts > 1,
    LeaderWorkerSets with size > 1)."""
    found = []
    for obj in objs:
        name = obj["metadata"]["name"]
        if obj["kind"] == "RayService":
            found += _ray_groups(name, obj)
        elif obj["kind"] == "LeaderWorkerSet":
            lws = obj["spec"]["leaderWorkerTemplate"]
            if lws.get("size", 1) > 1:
                leader = lws.get("leaderTemplate", lws["workerTemplate"])
                found.append(
                    Group(
                        f"LeaderWorkerSet/{name}",
                        lws["size"],
                        [leader, lws["workerTemplate"]],
                        _vllm_parallel(leader),
                        obj["spec"].get("replicas", 1),
                    )
                )
    return found


def _ray_groups(name: str, service: Manifest) -> list[Group]:
    config = yaml.safe_load(service["spec"]["serveConfigV2"])
    kwargs = config["applications"][0]["args"]["llm_configs"][0]["engine_kwargs"]
    parallel = kwargs.get("tensor_parallel_size", 1) * kwargs.get("pipeline_parallel_size", 1)
    return [
        Group(
            f"RayService/{name} {g['groupName']}",
            g["numOfHosts"],
            [g["template"]],
            parallel,
            g["maxReplicas"],
        )
        for g in service["spec"]["rayClusterConfig"].get("workerGroupSpecs", [])
        if g.get("numOfHosts", 1) > 1
    ]


def _vllm_parallel(template: dict[str, Any]) -> int:
    """TP × PP from the vLLM command line in the leader's container."""
    container = template["spec"]["containers"][0]
    words = shlex.split(" ".join([*container.get("command", []), *container.get("args", [])]))
    sizes = {"--tensor-parallel-size": 1, "--pipeline-parallel-size": 1}
    for flag in sizes:
        if flag in words:
            sizes[flag] = int(words[words.index(flag) + 1])
    return sizes["--tensor-parallel-size"] * sizes["--pipeline-parallel-size"]


def group_problems(objs: list[Manifest]) -> list[Problem]:
    """Devices, EFA, zone and NodePool limit of every multi-node group."""
    pools = {o["metadata"]["name"]: o for o in objs if o["kind"] == "NodePool"}
    out: list[Problem] = []
    for group in groups(objs):
        out += _devices(group)
        for pod in group.pods:
            out += _efa(group, pod)
            pool = pools.get(pod["spec"].get("nodeSelector", {}).get(NODEPOOL_LABEL, ""))
            out += _zone(group, pod, pool)
        out += _pool_limit(group, pools)
    return out


def _pod_devices(pod: dict[str, Any]) -> float:
    requests = pod_requests(pod)
    return sum(requests.get(r, 0.0) for r in DEVICE_RESOURCES)


def _devices(group: Group) -> list[Problem]:
    have = {_pod_devices(p) for p in group.pods}
    if have == {group.parallel / group.hosts}:
        return []
    return [
        Problem(
            "multi-node",
            f"{group.where}: {group.hosts} pods with {sorted(have)} devices each do not hold the "
            f"engine's TP×PP = {group.parallel} devices, one pod per node",
            "give each pod TP×PP / nodes devices (re-render from the spec)",
        )
    ]


def _efa(group: Group, pod: dict[str, Any]) -> list[Problem]:
    if pod_requests(pod).get(EFA_RESOURCE, 0.0) >= 1:
        return []
    return [
        Problem(
            "multi-node",
            f"{group.where}: a pod of a multi-node replica requests no {EFA_RESOURCE}, so NCCL "
            "falls back to TCP between pipeline stages",
            f"request {EFA_RESOURCE} and restrict the NodePool to EFA-capable instance types",
        )
    ]


def _zone(group: Group, pod: dict[str, Any], pool: Manifest | None) -> list[Problem]:
    terms = (
        pod["spec"]
        .get("affinity", {})
        .get("podAffinity", {})
        .get("requiredDuringSchedulingIgnoredDuringExecution", [])
    )
    if any(t.get("topologyKey") == ZONE_KEY for t in terms) or _pool_in_one_zone(pool):
        return []
    return [
        Problem(
            "multi-node",
            f"{group.where}: the group's pods may land in different availability zones; EFA "
            "does not cross zones",
            "add required pod affinity on topology.kubernetes.io/zone or set capacity.zone",
        )
    ]


def _pool_in_one_zone(pool: Manifest | None) -> bool:
    if pool is None:
        return False
    reqs = pool["spec"]["template"]["spec"].get("requirements", [])
    return any(
        r["key"] == ZONE_KEY and r["operator"] == "In" and len(r["values"]) == 1 for r in reqs
    )


def _pool_limit(group: Group, pools: dict[str, Manifest]) -> list[Problem]:
    pod = group.pods[-1]
    pool = pools.get(pod["spec"].get("nodeSelector", {}).get(NODEPOOL_LABEL, ""))
    if pool is None:
        return []
    need = group.max_replicas * group.parallel
    out = []
    for resource, limit in pool["spec"].get("limits", {}).items():
        if resource in DEVICE_RESOURCES and parse_quantity(limit) < need:
            out.append(
                Problem(
                    "multi-node",
                    f"{group.where}: NodePool {pool['metadata']['name']} limits {resource} to "
                    f"{limit}, but {group.max_replicas} replica(s) × {group.parallel} devices "
                    f"need {need}",
                    f"raise capacity.device_limit to {need} or lower replicas.max",
                )
            )
    return out

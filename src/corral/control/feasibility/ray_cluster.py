"""Ray's view of a RayService: the node types its autoscaler derives, and each replica's bundles.

Node types come from Ray's own KubeRay derivation (``ray.autoscaler._private.kuberay.
autoscaling_config._derive_autoscaling_config_from_ray_cr``) when Ray is installed, else from
``encoded_node_types``, which follows the same rules (tests check that both agree). Bundles
follow Ray Serve LLM (``ray/llm/_internal/serve``): ``VLLMEngineConfig.placement_bundles``,
``GPUAccelerator.default_bundles`` and ``_merge_replica_actor_and_child_actor_bundles``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import yaml

from corral.control.feasibility.quantities import parse_quantity

Bundle = dict[str, float]
HEAD = "headgroup"
"""The head's node-type name in Ray's derivation (``_HEAD_GROUP_NAME``)."""


@dataclass(frozen=True, slots=True)
class NodeType:
    """One kind of Ray node the autoscaler may start."""

    name: str
    resources: dict[str, float]
    min_workers: int
    max_workers: int


@dataclass(frozen=True, slots=True)
class ReplicaShape:
    """What one Serve replica asks Ray for, and the replica bounds."""

    bundles: list[Bundle]
    strategy: str
    min_replicas: int
    max_replicas: int


def node_types(ray_service: dict[str, Any]) -> list[NodeType]:
    """The node types Ray's autoscaler sees for the RayService (head first)."""
    derived = _ray_derivation(ray_service)
    if derived is None:
        return encoded_node_types(ray_service["spec"]["rayClusterConfig"])
    return [
        NodeType(name, dict(t["resources"]), t["min_workers"], t["max_workers"])
        for name, t in derived["available_node_types"].items()
    ]


def _ray_derivation(ray_service: dict[str, Any]) -> dict[str, Any] | None:
    try:
        from ray.autoscaler._private.kuberay.autoscaling_config import (
            _derive_autoscaling_config_from_ray_cr,
        )
    except ImportError:  # corral[ray] not installed: use the encoded rules
        return None
    cluster = {"metadata": ray_service["metadata"], "spec": ray_service["spec"]["rayClusterConfig"]}
    derived: dict[str, Any] = _derive_autoscaling_config_from_ray_cr(cluster)
    return derived


def encoded_node_types(cluster_spec: dict[str, Any]) -> list[NodeType]:
    """Ray's derivation rules (autoscaling_config.py ``_node_type_from_group_spec`` and
    ``_get_ray_resources_from_group_spec``): CPU, GPU (any ``*gpu`` limit) and memory from the
    first container's limits (else requests) unless ``rayStartParams`` sets them, and custom
    resources only from ``rayStartParams.resources``."""
    head = _node_type(HEAD, cluster_spec["headGroupSpec"], 0, 0)
    workers = [
        _node_type(
            g["groupName"],
            g,
            g["minReplicas"] * g.get("numOfHosts", 1),
            g["maxReplicas"] * g.get("numOfHosts", 1),
        )
        for g in cluster_spec.get("workerGroupSpecs", [])
    ]
    return [head, *workers]


def _node_type(name: str, group: dict[str, Any], low: int, high: int) -> NodeType:
    start = group.get("rayStartParams", {})
    k8s = group["template"]["spec"]["containers"][0].get("resources", {})
    limits, requests = k8s.get("limits", {}), k8s.get("requests", {})

    def k8s_value(key: str) -> str | None:
        value = limits.get(key, requests.get(key))
        return None if value is None else str(value)

    resources: dict[str, float] = {}
    cpu = start.get("num-cpus") or k8s_value("cpu")
    resources["CPU"] = math.ceil(parse_quantity(cpu)) if cpu is not None else 0
    gpus = start.get("num-gpus") or next(
        (v for k, v in [*limits.items(), *requests.items()] if k.endswith("gpu")), None
    )
    if gpus is not None and math.ceil(parse_quantity(gpus)) > 0:
        resources["GPU"] = math.ceil(parse_quantity(gpus))
    memory = start.get("memory") or k8s_value("memory")
    if memory is not None:
        resources["memory"] = math.ceil(parse_quantity(memory))
    if "resources" in start:
        resources.update(json.loads(start["resources"][1:-1].replace("\\", "")))
    return NodeType(name, resources, low, high)


def replica_shapes(ray_service: dict[str, Any]) -> list[ReplicaShape]:
    """Each Serve LLM application's replica bundles, as Ray Serve LLM builds them."""
    config = yaml.safe_load(ray_service["spec"]["serveConfigV2"])
    shapes = []
    for app in config["applications"]:
        for llm in app["args"]["llm_configs"]:
            scaling = llm["deployment_config"]["autoscaling_config"]
            bundles, strategy = llm_bundles(llm)
            shapes.append(
                ReplicaShape(bundles, strategy, scaling["min_replicas"], scaling["max_replicas"])
            )
    return shapes


def llm_bundles(llm: dict[str, Any]) -> tuple[list[Bundle], str]:
    """The placement-group bundles and strategy of one ``LLMConfig``'s replica."""
    kwargs = llm.get("engine_kwargs", {})
    devices = kwargs.get("tensor_parallel_size", 1) * kwargs.get("pipeline_parallel_size", 1)
    hint = llm.get("accelerator_type")
    pg = llm.get("placement_group_config")
    if pg:
        child = [dict(b) for b in pg.get("bundles") or []]
        if hint:
            for bundle in child:
                bundle.setdefault(f"accelerator_type:{hint}", 0.001)
        strategy = pg.get("strategy", "PACK")
    else:
        # No placement config: Ray Serve LLM resolves to GPUConfig and one GPU bundle per device.
        gpu: Bundle = {"GPU": 1.0}
        if hint:
            gpu[f"accelerator_type:{hint}"] = 0.001
        child = [dict(gpu) for _ in range(devices)]
        strategy = "PACK"
    return merge_replica_actor(child, {"CPU": 1.0, "GPU": 0.0}), strategy


def merge_replica_actor(child: list[Bundle], actor: Bundle) -> list[Bundle]:
    """The replica actor (``num_cpus`` 1 by default) shares the first bundle with the engine."""
    if not child:
        return [dict(actor)]
    first = {k: child[0].get(k, 0) + actor.get(k, 0) for k in {*child[0], *actor}}
    return [first, *(dict(b) for b in child[1:])]

"""The node's data filesystem: what the EC2NodeClass gives each instance, and what it must hold."""

from __future__ import annotations

from typing import Any

from corral.control.feasibility.quantities import GIB, parse_quantity
from corral.control.feasibility.report import Problem
from corral.control.planner.disk import allowed_instances, disk_need
from corral.control.planner.instances import InstanceType, PriceTable
from corral.control.spec import DeploymentSpec
from corral.kube.port import Manifest

AUTO_MODE_EPHEMERAL_GIB = 80.0
"""EKS Auto Mode NodeClass ``ephemeralStorage.size`` default (EKS user guide, "Create a Node
Class for Amazon EKS")."""
BOTTLEROCKET_DEFAULT_DATA_GIB = 20.0
"""Karpenter's default Bottlerocket data volume (/dev/xvdb) when none is mapped."""
AL2023_DEFAULT_ROOT_GIB = 20.0
"""Karpenter's default AL2023 root volume (/dev/xvda) when none is mapped."""


NODE_CLASS_KINDS = ("EC2NodeClass", "NodeClass")
"""Karpenter's and EKS Auto Mode's node classes."""


def node_class_spec(objs: list[Manifest]) -> dict[str, Any] | None:
    """The rendered node class's spec; None where it is external (Auto Mode's ``default``)."""
    return next((o["spec"] for o in objs if o["kind"] in NODE_CLASS_KINDS), None)


def data_disk_gib(node_class: dict[str, Any] | None, instance: InstanceType) -> float:
    """The filesystem kubelet and containerd use on ``instance`` (Auto Mode: its default 80Gi)."""
    if node_class is None:
        return AUTO_MODE_EPHEMERAL_GIB
    if "amiSelectorTerms" not in node_class:  # Auto Mode's NodeClass (EC2NodeClass needs it)
        size = node_class.get("ephemeralStorage", {}).get("size")
        return parse_quantity(size) / GIB if size else AUTO_MODE_EPHEMERAL_GIB
    if node_class.get("instanceStorePolicy") == "RAID0" and instance.instance_store_gb:
        return instance.instance_store_gb * 1e9 / GIB
    mappings = {m["deviceName"]: m for m in node_class.get("blockDeviceMappings", [])}
    bottlerocket = is_bottlerocket(node_class)
    mapping = mappings.get("/dev/xvdb" if bottlerocket else "/dev/xvda")
    if mapping is None:
        return BOTTLEROCKET_DEFAULT_DATA_GIB if bottlerocket else AL2023_DEFAULT_ROOT_GIB
    return parse_quantity(mapping["ebs"]["volumeSize"]) / GIB


def is_bottlerocket(node_class: dict[str, Any]) -> bool:
    return any(
        str(t.get("alias", "")).startswith("bottlerocket@")
        for t in node_class.get("amiSelectorTerms", [])
    )


def disk_problems(spec: DeploymentSpec, node_class: Manifest, table: PriceTable) -> list[Problem]:
    """The node's data filesystem against images + shared cache + replicas' ephemeral storage."""
    out = []
    for instance in allowed_instances(spec, table):
        have = data_disk_gib(node_class["spec"], instance)
        need = disk_need(spec, instance)
        if have + 1e-9 < need.total_gib:
            device = _data_volume(node_class)
            out.append(
                Problem(
                    "disk",
                    f"{node_class['kind']}/{node_class['metadata']['name']}: {instance.name} gets "
                    f"{have:.0f}Gi for data but needs {need.total_gib}Gi (images, model cache "
                    f"{need.shared_cache_gib}Gi, {need.pods_per_node} pod(s) × "
                    f"{need.per_pod_gib}Gi)",
                    f"raise capacity.node_class.root_volume_gib ({device}) to "
                    f"{need.total_gib} or leave it unset to size it from the plan",
                )
            )
    return out


def _data_volume(node_class: Manifest) -> str:
    if node_class["kind"] == "NodeClass":
        return "the NodeClass's ephemeralStorage.size"
    return "the /dev/xvdb volume" if is_bottlerocket(node_class["spec"]) else "the /dev/xvda volume"

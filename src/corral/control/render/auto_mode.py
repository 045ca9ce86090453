"""The EKS Auto Mode NodeClass (``eks.amazonaws.com/v1``) a deployment's NodePool launches from.

Auto Mode's built-in ``default`` NodeClass gives each node 80Gi of ephemeral storage (EKS user
guide, "Create a Node Class for Amazon EKS"), too little for images plus most models' weights;
Corral renders its own, sized like the Karpenter path's node disk (``planner.disk``). Auto Mode
installs the GPU/Neuron drivers, device plugins and the EFA plugin itself. The schema Corral
validates it against is written from that page (data/crds/eks.amazonaws.com_nodeclasses.json).
"""

from __future__ import annotations

from typing import Any

from corral.control.planner import disk
from corral.control.planner.instances import PriceTable
from corral.control.render import common
from corral.control.spec import DeploymentSpec
from corral.kube.port import Manifest

AUTO_MODE_NODE_ROLE = "AmazonEKSAutoNodeRole"
"""The node role the EKS console creates for Auto Mode (EKS user guide, "Create an Auto Mode
cluster"); a custom NodeClass also needs an EC2 access entry for it (docs/eks.md)."""
MAX_EPHEMERAL_GIB = 59000
"""Largest ``ephemeralStorage.size`` the NodeClass accepts (same page: 1-59000Gi)."""


def ephemeral_gib(spec: DeploymentSpec, table: PriceTable) -> int:
    """Node ephemeral storage: images + model cache + each replica pod's share, for the largest
    instance type the NodePool may launch (``root_volume_gib`` overrides)."""
    node_class = spec.capacity.node_class
    if node_class is not None and node_class.root_volume_gib is not None:
        return node_class.root_volume_gib
    needs = [disk.disk_need(spec, i).total_gib for i in disk.allowed_instances(spec, table)]
    return min(MAX_EPHEMERAL_GIB, max(needs, default=disk.IMAGE_GIB + disk.SYSTEM_GIB))


def render_node_class(spec: DeploymentSpec, table: PriceTable) -> Manifest:
    node_class = spec.capacity.node_class
    assert node_class is not None  # the spec requires it for auto-mode
    return {
        "apiVersion": "eks.amazonaws.com/v1",
        "kind": "NodeClass",
        "metadata": common.metadata(spec, common.nodepool_name(spec), namespaced=False),
        "spec": {
            "role": node_class.role or AUTO_MODE_NODE_ROLE,
            **common.discovery_selectors(node_class.cluster_name),
            "ephemeralStorage": {"size": f"{ephemeral_gib(spec, table)}Gi"},
            "tags": common.node_class_tags(spec),
        },
    }


def auto_mode_requirements(spec: DeploymentSpec) -> list[dict[str, Any]]:
    """Auto Mode's instance labels for the accelerator (EKS user guide, "EKS Auto Mode supported
    instance labels": ``eks.amazonaws.com/instance-gpu-manufacturer``, ``instance-gpu-name``,
    ``instance-family``)."""
    device = common.device_of(spec)
    if device.vendor == "nvidia":
        return [
            _req("eks.amazonaws.com/instance-gpu-manufacturer", ["nvidia"]),
            _req("eks.amazonaws.com/instance-gpu-name", [device.name]),
        ]
    return [_req("eks.amazonaws.com/instance-family", [device.name])]


def _req(key: str, values: list[str]) -> dict[str, Any]:
    return {"key": key, "operator": "In", "values": values}

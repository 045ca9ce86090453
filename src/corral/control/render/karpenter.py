"""Karpenter v1 NodePool + EC2NodeClass for the spec's accelerator, or EKS Auto Mode's NodePool
and NodeClass."""

from __future__ import annotations

from typing import Any

from corral.control.planner import disk
from corral.control.planner.instances import PriceTable
from corral.control.render import common
from corral.control.render.auto_mode import auto_mode_requirements, render_node_class
from corral.control.spec import DeploymentSpec
from corral.kube.port import Manifest

WEIGHTS = {"low": 10, "normal": 50, "high": 100}
OS_ONLY_GIB = 100
"""The EBS root volume where NVMe RAID0 holds images and data (OS, logs, headroom)."""
BOTTLEROCKET_OS_GIB = 4
"""Bottlerocket's OS volume; everything else lives on the data volume."""


def render_nodes(spec: DeploymentSpec, table: PriceTable) -> list[Manifest]:
    """The node objects for the spec's provisioner (none for CPU or provisioner none)."""
    if spec.capacity.provisioner == "none" or common.device_of(spec).vendor == "cpu":
        return []
    if spec.capacity.provisioner == "auto-mode":
        return [render_node_class(spec, table), _nodepool(spec, table, auto_mode=True)]
    return [_ec2nodeclass(spec, table), _nodepool(spec, table, auto_mode=False)]


def _instance_types(spec: DeploymentSpec, table: PriceTable) -> list[str]:
    """The instance types the spec restricts to; for a multi-node replica, the EFA-capable ones
    (with the spec's restriction applied), so every node of a replica can talk over EFA."""
    if spec.accelerator.nodes > 1:
        return sorted(i.name for i in disk.allowed_instances(spec, table))
    return sorted(spec.capacity.instance_types or [])


def _requirements(spec: DeploymentSpec, table: PriceTable, prefix: str) -> list[dict[str, Any]]:
    device = common.device_of(spec)
    capacity = (
        ["spot", "on-demand"] if spec.capacity.capacity_types == "spot-first" else ["on-demand"]
    )
    reqs: list[dict[str, Any]] = []
    if prefix == "eks.amazonaws.com":
        reqs += auto_mode_requirements(spec)
    elif device.karpenter_gpu_name is not None:
        reqs.append(_req(f"{prefix}/instance-gpu-name", [device.karpenter_gpu_name]))
    else:
        reqs.append(_req(f"{prefix}/instance-family", [device.name]))
    types = _instance_types(spec, table)
    if types:
        reqs.append(_req("node.kubernetes.io/instance-type", types))
    if spec.capacity.zone:
        reqs.append(_req("topology.kubernetes.io/zone", [spec.capacity.zone]))
    reqs.append(_req("karpenter.sh/capacity-type", capacity))
    reqs.append(_req("kubernetes.io/arch", ["amd64"]))
    return reqs


def _req(key: str, values: list[str]) -> dict[str, Any]:
    return {"key": key, "operator": "In", "values": values}


def _nodepool(spec: DeploymentSpec, table: PriceTable, *, auto_mode: bool) -> Manifest:
    device = common.device_of(spec)
    assert device.resource is not None  # CPU was excluded by render_nodes
    capacity = spec.capacity
    limit = capacity.device_limit or spec.replicas.max * spec.accelerator.devices
    if auto_mode:
        ref = {
            "group": "eks.amazonaws.com",
            "kind": "NodeClass",
            "name": common.nodepool_name(spec),
        }
        prefix = "eks.amazonaws.com"
    else:
        ref = {
            "group": "karpenter.k8s.aws",
            "kind": "EC2NodeClass",
            "name": common.nodepool_name(spec),
        }
        prefix = "karpenter.k8s.aws"
    return {
        "apiVersion": "karpenter.sh/v1",
        "kind": "NodePool",
        "metadata": common.metadata(spec, common.nodepool_name(spec), namespaced=False),
        "spec": {
            "weight": WEIGHTS[spec.priority],
            "limits": {device.resource: str(limit)},
            "disruption": {
                # Accelerator nodes go only when empty: consolidating an underutilised node
                # would move a replica that takes minutes to reload (AI on EKS inference pools,
                # awslabs/ai-on-eks infra/base/terraform/karpenter*: consolidationPolicy
                # WhenEmpty); replica pods also carry karpenter.sh/do-not-disrupt.
                "consolidationPolicy": "WhenEmpty",
                "consolidateAfter": capacity.consolidate_after,
                # Never take more than one accelerator node at a time, and none for drift
                # or consolidation while replicas are loading weights at the top of the hour.
                "budgets": [{"nodes": "1"}],
            },
            "template": {
                "metadata": {"labels": _node_labels(spec, auto_mode=auto_mode)},
                "spec": {
                    "nodeClassRef": ref,
                    "expireAfter": capacity.expire_after,
                    "terminationGracePeriod": "1h",
                    "requirements": _requirements(spec, table, prefix),
                    "taints": [{"key": device.resource, "effect": "NoSchedule"}],
                },
            },
        },
    }


AMI_FAMILY_LABEL = "corral.dev/ami-family"
"""On Karpenter nodes: the AMI family, so node add-ons can skip what the AMI brings itself
(Bottlerocket's NVIDIA variants run the NVIDIA device plugin as a host service)."""


def _node_labels(spec: DeploymentSpec, *, auto_mode: bool) -> dict[str, str]:
    labels = {**common.owned_labels(spec), "corral.dev/accelerator": common.device_of(spec).name}
    if not auto_mode and spec.capacity.node_class is not None:
        labels[AMI_FAMILY_LABEL] = spec.capacity.node_class.ami_alias.split("@", 1)[0]
    return labels


def _ec2nodeclass(spec: DeploymentSpec, table: PriceTable) -> Manifest:
    node_class = spec.capacity.node_class
    assert node_class is not None  # the spec requires it for karpenter
    return {
        "apiVersion": "karpenter.k8s.aws/v1",
        "kind": "EC2NodeClass",
        "metadata": common.metadata(spec, common.nodepool_name(spec), namespaced=False),
        "spec": {
            "role": node_class.role or f"KarpenterNodeRole-{node_class.cluster_name}",
            "amiSelectorTerms": [{"alias": node_class.ami_alias}],
            **common.discovery_selectors(node_class.cluster_name),
            "metadataOptions": {"httpTokens": "required", "httpPutResponseHopLimit": 1},
            **storage(spec, table),
            "tags": common.node_class_tags(spec),
        },
    }


def _ebs(device: str, gib: int) -> dict[str, Any]:
    return {
        "deviceName": device,
        "ebs": {
            "volumeSize": f"{gib}Gi",
            "volumeType": "gp3",
            "encrypted": True,
            "deleteOnTermination": True,
        },
    }


def storage(spec: DeploymentSpec, table: PriceTable) -> dict[str, Any]:
    """Block devices and instance-store policy sized for the node's images, cache and replicas.

    Where the instance has local NVMe, ``instanceStorePolicy: RAID0`` puts kubelet and containerd
    (images, emptyDirs, the model cache under /mnt/k8s-disks/0) on it (Karpenter v1 EC2NodeClass
    docs; amazon-eks-ami nodeadm ``setup-local-disks raid0``); the EBS volume then needs only room
    for the OS. Bottlerocket boots from a small OS volume ``/dev/xvda`` and keeps containers and
    data on ``/dev/xvdb`` (Karpenter's Bottlerocket default block devices: 4Gi xvda, 20Gi xvdb).
    """
    node_class = spec.capacity.node_class
    assert node_class is not None  # the spec requires it for karpenter
    hosts = disk.allowed_instances(spec, table)
    needs = {i.name: disk.disk_need(spec, i).total_gib for i in hosts}
    need = max(needs.values(), default=disk.IMAGE_GIB + disk.SYSTEM_GIB)
    bottlerocket = node_class.ami_alias.startswith("bottlerocket@")
    nvme = (
        not bottlerocket and bool(hosts) and all(disk.nvme_holds(i, needs[i.name]) for i in hosts)
    )
    size = node_class.root_volume_gib or (OS_ONLY_GIB if nvme else need)
    out: dict[str, Any] = {}
    if nvme:
        out["instanceStorePolicy"] = "RAID0"
    if bottlerocket:
        out["blockDeviceMappings"] = [
            _ebs("/dev/xvda", BOTTLEROCKET_OS_GIB),
            _ebs("/dev/xvdb", size),
        ]
    else:
        out["blockDeviceMappings"] = [_ebs("/dev/xvda", size)]
    return out

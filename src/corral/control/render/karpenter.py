"""Karpenter v1 NodePool + EC2NodeClass for the spec's accelerator, or an EKS Auto Mode NodePool."""

from __future__ import annotations

from typing import Any

from corral.control.render import common
from corral.control.spec import DeploymentSpec
from corral.kube.port import Manifest

WEIGHTS = {"low": 10, "normal": 50, "high": 100}


def render_nodes(spec: DeploymentSpec) -> list[Manifest]:
    """The node objects for the spec's provisioner (none for CPU or provisioner none)."""
    if spec.capacity.provisioner == "none" or common.device_of(spec).vendor == "cpu":
        return []
    if spec.capacity.provisioner == "auto-mode":
        return [_nodepool(spec, auto_mode=True)]
    return [_ec2nodeclass(spec), _nodepool(spec, auto_mode=False)]


def _requirements(spec: DeploymentSpec, prefix: str) -> list[dict[str, Any]]:
    device = common.device_of(spec)
    capacity = (
        ["spot", "on-demand"] if spec.capacity.capacity_types == "spot-first" else ["on-demand"]
    )
    reqs: list[dict[str, Any]] = []
    if device.karpenter_gpu_name is not None:
        reqs.append(_req(f"{prefix}/instance-gpu-name", [device.karpenter_gpu_name]))
    else:
        reqs.append(_req(f"{prefix}/instance-family", [device.name]))
    if spec.capacity.instance_types:
        reqs.append(_req("node.kubernetes.io/instance-type", sorted(spec.capacity.instance_types)))
    reqs.append(_req("karpenter.sh/capacity-type", capacity))
    reqs.append(_req("kubernetes.io/arch", ["amd64"]))
    return reqs


def _req(key: str, values: list[str]) -> dict[str, Any]:
    return {"key": key, "operator": "In", "values": values}


def _nodepool(spec: DeploymentSpec, *, auto_mode: bool) -> Manifest:
    device = common.device_of(spec)
    assert device.resource is not None  # CPU was excluded by render_nodes
    capacity = spec.capacity
    limit = capacity.device_limit or spec.replicas.max * spec.accelerator.devices
    if auto_mode:
        ref = {"group": "eks.amazonaws.com", "kind": "NodeClass", "name": "default"}
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
                "consolidationPolicy": "WhenEmptyOrUnderutilized",
                "consolidateAfter": capacity.consolidate_after,
                # Never take more than one accelerator node at a time, and none for drift
                # or consolidation while replicas are loading weights at the top of the hour.
                "budgets": [{"nodes": "1"}],
            },
            "template": {
                "metadata": {
                    "labels": {**common.owned_labels(spec), "corral.dev/accelerator": device.name}
                },
                "spec": {
                    "nodeClassRef": ref,
                    "expireAfter": capacity.expire_after,
                    "terminationGracePeriod": "1h",
                    "requirements": _requirements(spec, prefix),
                    "taints": [{"key": device.resource, "effect": "NoSchedule"}],
                },
            },
        },
    }


def _ec2nodeclass(spec: DeploymentSpec) -> Manifest:
    node_class = spec.capacity.node_class
    assert node_class is not None  # the spec requires it for karpenter
    discovery = {"karpenter.sh/discovery": node_class.cluster_name}
    return {
        "apiVersion": "karpenter.k8s.aws/v1",
        "kind": "EC2NodeClass",
        "metadata": common.metadata(spec, common.nodepool_name(spec), namespaced=False),
        "spec": {
            "role": node_class.role or f"KarpenterNodeRole-{node_class.cluster_name}",
            "amiSelectorTerms": [{"alias": node_class.ami_alias}],
            "subnetSelectorTerms": [{"tags": discovery}],
            "securityGroupSelectorTerms": [{"tags": discovery}],
            "metadataOptions": {"httpTokens": "required", "httpPutResponseHopLimit": 1},
            "blockDeviceMappings": [
                {
                    "deviceName": "/dev/xvda",
                    "ebs": {
                        "volumeSize": f"{node_class.root_volume_gib}Gi",
                        "volumeType": "gp3",
                        "encrypted": True,
                        "deleteOnTermination": True,
                    },
                }
            ],
            "tags": {common.DEPLOYMENT_LABEL: spec.name, common.MANAGED_BY: "corral"},
        },
    }

"""What a replica spread over several nodes needs: EFA devices, the NCCL/libfabric environment,
one availability zone, and EFA-capable instance types."""

from __future__ import annotations

from typing import Any

from corral.control.planner.instances import InstanceType
from corral.control.spec import DeploymentSpec

EFA_RESOURCE = "vpc.amazonaws.com/efa"
"""The extended resource the EFA Kubernetes device plugin advertises (aws-efa-k8s-device-plugin);
Karpenter attaches EFA interfaces to instances launched for pods that request it."""
ZONE_LABEL = "topology.kubernetes.io/zone"

EFA_ENV: tuple[tuple[str, str, str], ...] = (
    (
        "FI_PROVIDER",
        "efa",
        "libfabric uses the EFA provider, not TCP (aws-ofi-nccl README, 'Getting started'; "
        "EKS user guide, 'Run machine learning training on Amazon EKS with Elastic Fabric "
        "Adapter')",
    ),
    (
        "FI_EFA_USE_DEVICE_RDMA",
        "1",
        "GPUDirect RDMA between GPU memory and the EFA device on p4d/p5 (aws-ofi-nccl docs, "
        "'Environment variables'; AWS Deep Learning Containers set it for p4d/p5)",
    ),
    (
        "FI_EFA_FORK_SAFE",
        "1",
        "vLLM and Ray start worker processes with fork; libfabric must register memory "
        "fork-safely (aws-ofi-nccl docs: required when the application forks)",
    ),
    (
        "NCCL_SOCKET_IFNAME",
        "eth0",
        "NCCL's bootstrap and out-of-band traffic on the pod's interface (vLLM docs, "
        "'Distributed inference and serving', troubleshooting multi-node: set "
        "NCCL_SOCKET_IFNAME and GLOO_SOCKET_IFNAME)",
    ),
    (
        "GLOO_SOCKET_IFNAME",
        "eth0",
        "torch.distributed's Gloo group vLLM creates beside NCCL (same vLLM docs)",
    ),
    (
        "NCCL_DEBUG",
        "WARN",
        "prints which network NCCL chose ('NET/OFI Selected Provider is efa' means EFA is used, "
        "'NET/Socket' means it fell back to TCP): the one line to check on a real cluster",
    ),
)
"""(variable, value, why and where it is documented) for every multi-node pod."""

IPC_LOCK = {"capabilities": {"add": ["IPC_LOCK"]}}
"""EFA registers (pins) memory; pods need IPC_LOCK for unlimited locked memory (AWS EFA samples,
aws-samples/awsome-distributed-training EKS manifests)."""


def is_multi_node(spec: DeploymentSpec) -> bool:
    return spec.accelerator.nodes > 1


def efa_capable(instance: InstanceType) -> bool:
    return instance.efa > 0


def efa_env() -> list[dict[str, Any]]:
    return [{"name": name, "value": value} for name, value, _ in EFA_ENV]


def efa_interfaces(hosts: list[InstanceType]) -> int:
    """EFA interfaces one pod asks for: all that the smallest allowed host has (one pod a node)."""
    return min((i.efa for i in hosts), default=1)


def same_zone(selector: dict[str, str]) -> dict[str, Any]:
    """Pod affinity keeping every pod of the deployment in one availability zone: pipeline stages
    exchange activations every token, and EFA does not cross zones. The first pod matches its
    own selector, so it may start in any zone (Kubernetes docs, 'Inter-pod affinity')."""
    term = {
        "labelSelector": {"matchLabels": dict(selector)},
        "topologyKey": ZONE_LABEL,
    }
    return {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [term]}}


def multi_node_pod(spec: DeploymentSpec, selector: dict[str, str]) -> dict[str, Any]:
    """Pod-spec fields every multi-node pod carries (none for a single-node replica): the
    affinity keeping the pods ``selector`` matches in one zone."""
    if not is_multi_node(spec):
        return {}
    return {"affinity": same_zone(selector)}


def multi_node_container(spec: DeploymentSpec) -> dict[str, Any]:
    """Container fields for multi-node pods: memory locking for EFA."""
    return {"securityContext": IPC_LOCK} if is_multi_node(spec) else {}

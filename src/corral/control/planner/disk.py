"""Node disk a deployment needs: container images, the model cache, copied weights."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from corral.control.planner.instances import InstanceType, PriceTable
from corral.control.planner.memory import GB, WEIGHT_BYTES

if TYPE_CHECKING:
    from corral.control.spec import DeploymentSpec

GIB = 2**30
IMAGE_GIB = 60
"""Serving images on a node: ray-llm/vLLM CUDA images are ~10-15 GB compressed and 25-30 GB
unpacked, and containerd keeps the pulled layers next to the unpacked snapshot."""
SYSTEM_GIB = 30
"""Operating system, kubelet, logs and the other DaemonSets' images."""
SCRATCH_GIB = 10
"""Per replica pod: logs, compile caches, temporary files (its ephemeral-storage request)."""
WEIGHTS_MARGIN = 1.1
"""Tokenizer, configs and partly downloaded files on top of the weights themselves."""


@dataclass(frozen=True, slots=True)
class DiskNeed:
    """What one node of the deployment's NodePool holds, in GiB."""

    shared_cache_gib: int
    """Weights downloaded once per node into the shared model cache (Hugging Face sources)."""
    per_pod_gib: int
    """Each replica pod's ephemeral storage (scratch, plus weights it copies from S3)."""
    pods_per_node: int

    @property
    def total_gib(self) -> int:
        return (
            IMAGE_GIB + SYSTEM_GIB + self.shared_cache_gib + self.per_pod_gib * self.pods_per_node
        )


def weights_gib(spec: DeploymentSpec) -> int:
    """The model's weights on disk, with margin (0 when its size is unknown)."""
    shape = spec.model.resolved_shape()
    if shape is None:
        return 0
    size = shape.params_b * 1e9 * WEIGHT_BYTES[spec.engine.weight_format] / GB
    return math.ceil(size * GB / GIB * WEIGHTS_MARGIN)


def pod_ephemeral_gib(spec: DeploymentSpec) -> int:
    """The ephemeral storage one replica pod requests: scratch, plus S3 weights it copies."""
    copies = spec.model.kind == "s3" and spec.model.s3_mode == "init-container"
    return SCRATCH_GIB + (weights_gib(spec) if copies else 0)


def pods_per_node(spec: DeploymentSpec, instance: InstanceType) -> int:
    """Replica pods one instance can carry by devices (at least one)."""
    return max(1, instance.count // max(1, spec.accelerator.devices_per_node))


def disk_need(spec: DeploymentSpec, instance: InstanceType) -> DiskNeed:
    """The disk one ``instance`` needs when filled with the deployment's replicas."""
    cache = weights_gib(spec) if spec.model.kind == "huggingface" else 0
    return DiskNeed(cache, pod_ephemeral_gib(spec), pods_per_node(spec, instance))


def allowed_instances(spec: DeploymentSpec, table: PriceTable) -> list[InstanceType]:
    """Instance types the deployment's NodePool may launch for it: one replica pod fits by
    devices, and for a replica spanning nodes the instance has EFA."""
    acc = spec.accelerator
    found = table.for_accelerator(acc.type, max(1, acc.devices_per_node))
    if acc.nodes > 1:
        found = [i for i in found if i.efa > 0]
    if spec.capacity.instance_types:
        found = [i for i in found if i.name in spec.capacity.instance_types]
    return found


def nvme_holds(instance: InstanceType, need_gib: int) -> bool:
    """Whether the instance's local NVMe (GB) holds ``need_gib`` GiB."""
    return instance.instance_store_gb * 1e9 >= need_gib * GIB

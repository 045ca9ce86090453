"""How long a replica takes to serve on EKS: node, image, weights, warm-up (assumed figures)."""

from __future__ import annotations

from dataclasses import dataclass

from corral.control.planner.memory import GB, WEIGHT_BYTES
from corral.control.spec import DeploymentSpec

NODE_PROVISION_S: dict[str, float] = {
    "g4dn": 75.0,
    "g5": 75.0,
    "g6": 75.0,
    "g6e": 80.0,
    "p4d": 150.0,
    "p5": 180.0,
    "p5e": 180.0,
    "inf2": 90.0,
    "trn1": 90.0,
}
"""Seconds from a pending pod to a Ready GPU node with Karpenter: EC2 launch (~20-40 s), boot,
kubelet join and the device plugin advertising devices (~40-60 s); the large p-families take
longer to pass EC2 health checks. Typical observed figures, not measurements of this project:
edit them (or pass overrides) for your AMI and region."""

DEFAULT_NODE_PROVISION_S = 90.0
"""Used for an instance family the table does not name."""

IMAGE_GB = 10.0
"""Compressed size of the Ray Serve LLM / vLLM image a fresh node pulls once."""

IMAGE_PULL_GB_PER_S = 0.2
"""Image pull rate from ECR into a fresh node's containerd."""

WEIGHT_LOAD_GB_PER_S: dict[str, float] = {
    "huggingface": 0.3,
    "s3": 1.0,
    "pvc": 0.5,
}
"""Weight load rate by ``model.source`` kind: Hugging Face Hub downloads, S3 through
Mountpoint (or an init-container copy), a PersistentVolume (EBS gp3 or EFS)."""

ENGINE_WARMUP_S = 30.0
"""vLLM profiling the KV cache, capturing CUDA graphs and compiling (with a warm compile cache)."""


@dataclass(frozen=True, slots=True)
class StartupModel:
    """The stages of bringing one replica up."""

    node_provision_s: float
    image_pull_s: float
    weight_load_s: float
    warmup_s: float

    @property
    def on_warm_node_s(self) -> float:
        """A replica on a node that already runs (image cached): weights and warm-up."""
        return self.weight_load_s + self.warmup_s

    @property
    def image_and_engine_s(self) -> float:
        """A replica on a node that just became Ready: image pull, weights, warm-up."""
        return self.image_pull_s + self.weight_load_s + self.warmup_s


def startup_model(spec: DeploymentSpec, instance_family: str) -> StartupModel:
    """Start-up stages for ``spec`` on an instance of ``instance_family``."""
    shape = spec.model.resolved_shape()
    weights_gb = 0.0
    if shape is not None:
        weights_gb = shape.params_b * 1e9 * WEIGHT_BYTES[spec.engine.weight_format] / GB
    return StartupModel(
        node_provision_s=NODE_PROVISION_S.get(instance_family, DEFAULT_NODE_PROVISION_S),
        image_pull_s=IMAGE_GB / IMAGE_PULL_GB_PER_S,
        weight_load_s=weights_gb / WEIGHT_LOAD_GB_PER_S[spec.model.kind],
        warmup_s=ENGINE_WARMUP_S,
    )

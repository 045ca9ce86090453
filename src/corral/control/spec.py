"""The deployment spec: one YAML document saying what model to run where, checked on load."""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from corral.control.accelerators import ACCELERATORS, AcceleratorName, accelerator
from corral.control.planner.fit import check_fit
from corral.control.planner.memory import ModelShape, known_shape
from corral.errors import ConfigError

_DNS_LABEL = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"
_HF_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_S3_URI = re.compile(r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/[^\s]*)?$")
_PVC_URI = re.compile(r"^pvc://[a-z0-9]([-a-z0-9]*[a-z0-9])?(/[^\s]*)?$")
_LABEL_KEY = re.compile(
    r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
)
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")
_DURATION = r"^[0-9]+(s|m|h)$"
DEFAULT_AMI_ALIAS = "al2023@v20251120"
"""The EKS-optimized AL2023 release accelerator pools pin by default (amazon-eks-ami releases);
Karpenter's ``amiSelectorTerms`` alias format ``family@version`` (karpenter.k8s.aws_ec2nodeclasses
CRD: "pinned to a specific AMI release ... latest ... not recommended for production")."""
HPA_MAX_WINDOW_S = 3600
"""The longest stabilization window a HorizontalPodAutoscaler accepts, in seconds."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ShapeSpec(_Strict):
    """A model's shape, for models the planner does not know by name."""

    params_b: float = Field(gt=0, description="Parameters in billions.")
    layers: int = Field(gt=0, description="Transformer layers.")
    attention_heads: int = Field(gt=0, description="Query attention heads.")
    kv_heads: int = Field(gt=0, description="Key/value heads (GQA).")
    head_dim: int = Field(gt=0, description="Dimension of one attention head.")
    active_params_b: float | None = Field(
        None, gt=0, description="Mixture-of-experts: parameters active per token, in billions."
    )


class ModelSource(_Strict):
    """Where the weights come from."""

    source: str = Field(
        description="Hugging Face id (org/name), s3://bucket/prefix, or pvc://claim[/path]."
    )
    served_name: str | None = Field(None, description="Model name clients use; default: the id.")
    s3_mode: Literal["mountpoint", "init-container", "stream"] = Field(
        "mountpoint",
        description="S3 weights: mount with the Mountpoint for Amazon S3 CSI driver, "
        "copy with an init container, or stream into device memory with vLLM's Run:ai model "
        "streamer (--load-format runai_streamer) using the pod's IAM role (EKS Pod Identity or "
        "IRSA); corral plan's cold-start estimate says which is fastest for the model.",
    )
    iam_role_arn: str | None = Field(
        None,
        pattern=r"^arn:aws[a-z-]*:iam::[0-9]{12}:role/[\w+=,.@/-]+$",
        description="IAM role that may read the S3 weights. Set: annotates the ServiceAccount "
        "for IRSA (eks.amazonaws.com/role-arn). Unset: bind the ServiceAccount with an EKS Pod "
        "Identity association (docs/eks.md).",
    )
    s3_region: str | None = Field(None, description="Region of the S3 bucket.")
    hf_token_secret: str | None = Field(
        None, description="Secret (key hf-token) with a Hugging Face token, for gated models."
    )
    shape: ShapeSpec | None = Field(None, description="Model shape, when not a well-known model.")

    @field_validator("source")
    @classmethod
    def _known_scheme(cls, value: str) -> str:
        if value.startswith("s3://"):
            if not _S3_URI.match(value):
                raise ValueError("s3 source must look like s3://bucket-name/prefix")
        elif value.startswith("pvc://"):
            if not _PVC_URI.match(value):
                raise ValueError("pvc source must look like pvc://claim-name/path")
        elif not _HF_ID.match(value):
            raise ValueError(
                "must be a Hugging Face id (org/name), an s3://bucket/prefix URI or pvc://claim/path"
            )
        return value

    @property
    def kind(self) -> Literal["huggingface", "s3", "pvc"]:
        if self.source.startswith("s3://"):
            return "s3"
        return "pvc" if self.source.startswith("pvc://") else "huggingface"

    def resolved_shape(self) -> ModelShape | None:
        """The given shape, else the well-known one for this id, else None."""
        if self.shape is not None:
            return ModelShape(**self.shape.model_dump())
        return known_shape(self.source)


class EngineSpec(_Strict):
    """How vLLM runs the model."""

    kind: Literal["vllm"] = Field("vllm", description="Inference engine.")
    runtime: Literal["rayservice", "deployment"] = Field(
        "rayservice",
        description="rayservice: KubeRay RayService with Ray Serve LLM; "
        "deployment: a plain vLLM Deployment (no KubeRay needed).",
    )
    image: str | None = Field(None, description="Container image; default per accelerator.")
    max_model_len: int = Field(8192, ge=256, le=1_048_576, description="Context length.")
    gpu_memory_utilization: float = Field(
        0.9, gt=0.1, le=0.98, description="Fraction of device memory vLLM may use."
    )
    dtype: Literal["auto", "bfloat16", "float16", "float32"] = Field(
        "auto",
        description="Weights and activations; auto: bfloat16 where the accelerator supports it "
        "(NVIDIA compute capability 8.0+, Neuron, CPU), else float16 (T4).",
    )
    quantization: Literal["none", "fp8", "awq", "gptq"] = Field("none", description="Weights.")
    kv_cache_dtype: Literal["auto", "fp8"] = Field("auto", description="KV cache element type.")
    max_num_seqs: int = Field(16, ge=1, le=1024, description="Sequences batched at once.")
    extra_args: dict[str, str | int | float | bool] = Field(
        default_factory=dict, description="More vLLM engine arguments (snake_case)."
    )

    @property
    def weight_format(self) -> str:
        if self.quantization != "none":
            return self.quantization
        return "bfloat16" if self.dtype == "auto" else self.dtype

    @property
    def kv_dtype_bytes(self) -> float:
        if self.kv_cache_dtype == "fp8":
            return 1.0
        return 4.0 if self.dtype == "float32" else 2.0


class AcceleratorSpec(_Strict):
    """Which devices one replica uses."""

    type: AcceleratorName = Field("l4", description="Accelerator; cpu for CPU-only (dev).")
    count: int | None = Field(
        None, ge=0, le=16, description="Devices per replica; default tensor × pipeline parallel."
    )
    tensor_parallel: int = Field(1, ge=1, le=64, description="Tensor-parallel size.")
    pipeline_parallel: int = Field(1, ge=1, le=16, description="Pipeline-parallel size.")
    nodes: int = Field(
        1,
        ge=1,
        le=8,
        description="Nodes one replica spans. Above 1: a multi-node replica (pipeline stages "
        "across nodes over EFA): KubeRay worker groups with numOfHosts for rayservice, a "
        "LeaderWorkerSet for deployment. pipeline_parallel must be a multiple of it.",
    )

    @model_validator(mode="after")
    def _consistent(self) -> AcceleratorSpec:
        device = accelerator(self.type)
        parallel = self.tensor_parallel * self.pipeline_parallel
        if device.vendor == "cpu":
            if self.count not in (None, 0) or parallel != 1 or self.nodes != 1:
                raise ValueError("cpu takes no count, no tensor/pipeline parallelism, one node")
            return self
        if self.pipeline_parallel % self.nodes:
            raise ValueError(
                f"nodes ({self.nodes}) must divide pipeline_parallel ({self.pipeline_parallel}): "
                "each node holds whole pipeline stages (tensor parallelism stays on one node's "
                "NVLink); set pipeline_parallel to a multiple of nodes"
            )
        cores = self.devices * device.cores_per_device
        if parallel != cores:
            unit = "NeuronCores" if device.vendor == "neuron" else "GPUs"
            raise ValueError(
                f"tensor_parallel × pipeline_parallel = {parallel} must equal the {unit} per "
                f"replica ({cores}); set count to {parallel // device.cores_per_device or 1} "
                "or change the parallelism"
            )
        return self

    @property
    def devices(self) -> int:
        """Devices per replica (0 for CPU)."""
        if self.type == "cpu":
            return 0
        if self.count is not None:
            return self.count
        return max(
            1,
            self.tensor_parallel
            * self.pipeline_parallel
            // accelerator(self.type).cores_per_device,
        )

    @property
    def devices_per_node(self) -> int:
        """Devices one pod of a replica holds (all of them unless the replica spans nodes)."""
        return self.devices // self.nodes


class ReplicaSpec(_Strict):
    """How many replicas, and when to add or remove them.

    With ``engine.runtime: rayservice`` Ray Serve's autoscaler applies these. With ``deployment``
    a HorizontalPodAutoscaler (autoscaling/v2) does, when ``max > min``: it averages the Pods
    metric ``vllm_num_requests_ongoing`` (vLLM's running + waiting requests per pod, served by
    prometheus-adapter; rule in deploy/prometheus/adapter-values.yaml) against
    ``target_ongoing_requests``, and the delays become its stabilization windows (at most 3600 s).
    An HPA cannot scale to zero, so ``min: 0`` needs the rayservice runtime.
    """

    min: int = Field(
        1,
        ge=0,
        le=1000,
        description="Fewest replicas (0 allows scale to zero; rayservice runtime only).",
    )
    max: int = Field(1, ge=1, le=1000, description="Most replicas.")
    target_ongoing_requests: int = Field(
        16,
        ge=1,
        description="Requests per replica to aim for (running + queued; for the deployment "
        "runtime, the HPA's target average of the Pods metric vllm_num_requests_ongoing).",
    )
    max_ongoing_requests: int = Field(64, ge=1, description="Requests one replica accepts.")
    upscale_delay_s: float = Field(
        30.0, ge=0, description="Wait before adding replicas (HPA scale-up window)."
    )
    downscale_delay_s: float = Field(
        600.0, ge=0, description="Wait before removing replicas (HPA scale-down window)."
    )
    upscaling_factor: float = Field(
        0.3,
        gt=0,
        le=1,
        description="Share of the gap to the wanted replicas added per scale-up decision "
        "(Ray Serve's upscaling_factor; rayservice runtime). Below 1 it stops a burst shorter "
        "than a replica's start-up from launching nodes that arrive after it; see "
        "bench/simulation/RESULTS.md.",
    )

    @model_validator(mode="after")
    def _ordered(self) -> ReplicaSpec:
        if self.min > self.max:
            raise ValueError(f"min ({self.min}) must not exceed max ({self.max})")
        if self.target_ongoing_requests > self.max_ongoing_requests:
            raise ValueError("target_ongoing_requests must not exceed max_ongoing_requests")
        return self


class NodeClassSpec(_Strict):
    """The EC2NodeClass Karpenter launches GPU nodes from."""

    cluster_name: str = Field(min_length=1, description="EKS cluster name (discovery tags).")
    role: str | None = Field(
        None, description="Node IAM role; default KarpenterNodeRole-<cluster>."
    )
    ami_alias: str = Field(
        DEFAULT_AMI_ALIAS,
        pattern=r"^(al2023|bottlerocket)@",
        description="EKS-optimized AMI as family@version, pinned (al2023@v20251120, "
        "bottlerocket@v1.50.0): changing the version drifts the pool's nodes onto the new AMI one "
        "at a time (docs/eks.md). @latest is refused: a new AMI would drift every GPU node.",
    )

    @field_validator("ami_alias")
    @classmethod
    def _pinned(cls, value: str) -> str:
        if value.endswith("@latest"):
            family = value.split("@", 1)[0]
            example = DEFAULT_AMI_ALIAS if family == "al2023" else "bottlerocket@v1.50.0"
            raise ValueError(
                f"{value} drifts every node whenever AWS publishes an AMI; pin a release, e.g. "
                f"{example}, and upgrade by changing it (Karpenter drift replaces nodes under "
                "the NodePool's disruption budget)"
            )
        return value

    root_volume_gib: int | None = Field(
        None,
        ge=20,
        le=16384,
        description="EBS volume for images and the model cache (al2023: /dev/xvda; bottlerocket: "
        "its data volume /dev/xvdb); default: sized from weights × replicas per node + images.",
    )


class CapacitySpec(_Strict):
    """Where nodes come from and what they may cost."""

    provisioner: Literal["karpenter", "auto-mode", "none"] = Field(
        "karpenter", description="karpenter (NodePool + EC2NodeClass), EKS auto-mode, or none."
    )
    capacity_types: Literal["spot-first", "on-demand"] = Field(
        "spot-first", description="spot-first falls back to on-demand; on-demand never uses spot."
    )
    instance_types: list[str] | None = Field(None, description="Restrict to these instance types.")
    zone: str | None = Field(
        None,
        pattern=r"^[a-z]{2}(-[a-z]+)+-[0-9][a-z]$",
        description="Availability zone for the NodePool (e.g. us-east-1a). Multi-node replicas "
        "stay in one zone anyway (pod affinity); setting it pins where (EFA capacity blocks).",
    )
    node_class: NodeClassSpec | None = Field(
        None,
        description="Required for karpenter and auto-mode (auto-mode uses cluster_name, role and "
        "root_volume_gib, which sizes the NodeClass's ephemeral storage).",
    )
    device_limit: int | None = Field(None, ge=1, description="NodePool cap on devices.")
    consolidate_after: str = Field(
        "60s", pattern=_DURATION, description="Idle before removal (simulated: RESULTS.md)."
    )
    expire_after: str = Field("720h", pattern=_DURATION, description="Node lifetime.")

    @model_validator(mode="after")
    def _node_class_for_karpenter(self) -> CapacitySpec:
        if self.provisioner != "none" and self.node_class is None:
            raise ValueError(
                f"provisioner {self.provisioner} needs node_class (at least cluster_name, whose "
                "karpenter.sh/discovery tag selects subnets and security groups); or use "
                "provisioner none"
            )
        return self


class GatewayRef(_Strict):
    """Which pods may call the model (the NetworkPolicy admits only these)."""

    namespace: str = Field("corral", pattern=_DNS_LABEL, description="Gateway namespace.")
    pod_labels: dict[str, str] = Field(
        default_factory=lambda: {"app.kubernetes.io/name": "corral-gateway"},
        description="Labels on gateway pods.",
    )


class MonitoringSpec(_Strict):
    """Prometheus wiring."""

    enabled: bool = Field(True, description="Render ServiceMonitor/PodMonitor objects.")
    namespace: str = Field("monitoring", pattern=_DNS_LABEL, description="Prometheus namespace.")
    release_label: str = Field("kube-prometheus-stack", description="Value of label `release`.")


def _no_provisioner() -> CapacitySpec:
    return CapacitySpec(provisioner="none")


class DeploymentSpec(_Strict):
    """One model deployment on Kubernetes."""

    name: str = Field(pattern=_DNS_LABEL, max_length=40, description="Deployment name (DNS label).")
    namespace: str = Field("corral-models", pattern=_DNS_LABEL, description="Namespace.")
    model: ModelSource
    engine: EngineSpec = Field(default_factory=EngineSpec)
    accelerator: AcceleratorSpec = Field(default_factory=AcceleratorSpec)
    replicas: ReplicaSpec = Field(default_factory=ReplicaSpec)
    capacity: CapacitySpec = Field(default_factory=_no_provisioner)
    priority: Literal["low", "normal", "high"] = Field("normal", description="Scheduling priority.")
    labels: dict[str, str] = Field(
        default_factory=dict, description="Extra labels on every object."
    )
    gateway: GatewayRef = Field(default_factory=GatewayRef)
    monitoring: MonitoringSpec = Field(default_factory=MonitoringSpec)

    @field_validator("labels")
    @classmethod
    def _valid_labels(cls, value: dict[str, str]) -> dict[str, str]:
        for key, val in value.items():
            if not _LABEL_KEY.match(key) or not _LABEL_VALUE.match(val):
                raise ValueError(f"label {key}={val!r} is not a valid Kubernetes label")
        return value

    @model_validator(mode="after")
    def _hpa_can_scale(self) -> DeploymentSpec:
        if self.engine.runtime != "deployment":
            return self
        if self.replicas.min == 0:
            raise ValueError(
                "replicas.min 0 is not possible with engine.runtime deployment: its "
                "HorizontalPodAutoscaler cannot scale to zero (the HPAScaleToZero feature gate is "
                "alpha and off on EKS); set replicas.min to 1 or more, or use engine.runtime "
                "rayservice, whose Ray Serve autoscaler scales to zero"
            )
        for name in ("upscale_delay_s", "downscale_delay_s"):
            if getattr(self.replicas, name) > HPA_MAX_WINDOW_S:
                raise ValueError(
                    f"replicas.{name} must be at most {HPA_MAX_WINDOW_S} with engine.runtime "
                    "deployment (the HorizontalPodAutoscaler's longest stabilization window)"
                )
        return self

    @model_validator(mode="after")
    def _streamable(self) -> DeploymentSpec:
        streams = self.model.kind == "s3" and self.model.s3_mode == "stream"
        if streams and accelerator(self.accelerator.type).vendor == "neuron":
            raise ValueError(
                "model.s3_mode stream uses vLLM's Run:ai model streamer, which the Neuron "
                "vLLM (neuronx) does not offer; use s3_mode mountpoint or init-container"
            )
        return self

    @model_validator(mode="after")
    def _multi_node_supported(self) -> DeploymentSpec:
        if self.accelerator.nodes == 1:
            return self
        if accelerator(self.accelerator.type).vendor != "nvidia":
            raise ValueError(
                "accelerator.nodes above 1 needs an NVIDIA accelerator (vLLM's multi-node "
                "pipeline parallelism runs over NCCL); use one node with Neuron"
            )
        if self.capacity.provisioner == "auto-mode":
            raise ValueError(
                "accelerator.nodes above 1 needs provisioner karpenter (or none): Corral "
                "renders EFA-capable single-zone pools for Karpenter only"
            )
        if self.engine.runtime == "deployment" and self.replicas.max != self.replicas.min:
            raise ValueError(
                "a multi-node replica with engine.runtime deployment (a LeaderWorkerSet) has a "
                "fixed group count: set replicas.max to replicas.min, or use engine.runtime "
                "rayservice, whose autoscaler adds whole multi-node replicas"
            )
        return self

    @property
    def served_name(self) -> str:
        return self.model.served_name or self.model.source.rsplit("/", 1)[-1]

    @property
    def dtype(self) -> str:
        """The dtype vLLM gets: ``engine.dtype``, with ``auto`` resolved for the accelerator."""
        if self.engine.dtype != "auto":
            return self.engine.dtype
        return accelerator(self.accelerator.type).default_dtype


def deployment_schema() -> dict[str, Any]:
    """The JSON Schema of a deployment spec (what ``corral schema deployment`` prints)."""
    schema = DeploymentSpec.model_json_schema()
    schema["$id"] = "https://corral.dev/schemas/deployment.json"
    return schema


def parse_spec(data: object) -> DeploymentSpec:
    """A checked spec from parsed YAML; ConfigError names each bad field and what is allowed."""
    if not isinstance(data, dict):
        raise ConfigError("a deployment spec must be a YAML mapping with at least name and model")
    try:
        spec = DeploymentSpec.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_explain(exc)) from exc
    check_fit(spec)
    return spec


def load_spec(path: Path) -> DeploymentSpec:
    """Read and check a spec file."""
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ConfigError(f"cannot read deployment spec {path}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from exc
    return parse_spec(data)


def _explain(exc: ValidationError) -> str:
    lines = ["invalid deployment spec:"]
    for err in exc.errors():
        loc = [str(p) for p in err["loc"]]
        where = ".".join(loc) or "(spec)"
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = _unknown_field(loc)
        lines.append(f"  {where}: {msg}")
    return "\n".join(lines)


def _unknown_field(loc: list[str]) -> str:
    model: type[BaseModel] = DeploymentSpec
    for part in loc[:-1]:
        field = model.model_fields.get(part)
        annotation = getattr(field, "annotation", None) if field else None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            break
        model = annotation
    allowed = list(model.model_fields)
    close = difflib.get_close_matches(loc[-1], allowed, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return f"unknown field; {hint}allowed: {', '.join(allowed)}"


__all__ = ["ACCELERATORS", "DeploymentSpec", "deployment_schema", "load_spec", "parse_spec"]

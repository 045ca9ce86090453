"""Names, labels and pod pieces every renderer shares."""

from __future__ import annotations

from typing import Any

from corral.control.accelerators import ACCELERATORS, Accelerator
from corral.control.planner import disk
from corral.control.planner.instances import PriceTable, allocatable_cpu_memory
from corral.control.render import multi_node
from corral.control.spec import DeploymentSpec

MANAGED_BY = "app.kubernetes.io/managed-by"
DEPLOYMENT_LABEL = "corral.dev/deployment"
ROLE_LABEL = "corral.dev/role"
MODEL_ANNOTATION = "corral.dev/model"
"""On the model's Service: the public model name the gateway learns it under."""
PORT_ANNOTATION = "corral.dev/port"
"""On the model's Service: the port serving the OpenAI API (under ``/v1``)."""
MIN_REPLICAS_ANNOTATION = "corral.dev/min-replicas"
"""On the model's Service: the fewest replicas; 0 means requests may wait for a cold start."""
NODEPOOL_LABEL = "karpenter.sh/nodepool"
DO_NOT_DISRUPT = "karpenter.sh/do-not-disrupt"
SERVING_POD_ANNOTATIONS = {DO_NOT_DISRUPT: "true"}
"""On pods that hold a replica: Karpenter never consolidates or drifts their node away (a replica
takes many minutes to load its weights). Forced disruption (expiry, interruption) still happens,
bounded by the NodePool's ``terminationGracePeriod``. Karpenter v1 docs, "Disruption":
``karpenter.sh/do-not-disrupt: "true"`` blocks voluntary disruption of the pod's node."""
MODEL_DIR = "/models"
HF_HOME = "/cache/huggingface"
MODEL_CACHE_HOST_DIR = "/mnt/k8s-disks/0/corral-models"
"""Where the shared per-node model cache lives: on the NVMe RAID0 array where Karpenter builds
one (nodeadm mounts it at /mnt/k8s-disks/0), else created on the node's data volume."""
NEURON_SCHEDULER = "neuron-scheduler"
"""The second kube-scheduler the accelerators component runs with the Neuron scheduler extension
(deploy/kustomize/components/accelerators/neuron-scheduler.yaml), which allocates a pod's
NeuronCores contiguously. EKS Auto Mode runs its own Neuron device plugin and no extension, so
Auto Mode pods keep the default scheduler."""
SERVE_PORT = 8000
METRICS_PORT = 8080

RAY_VERSION = "2.52.0"
NEURON_VLLM_IMAGE = (
    # AWS Neuron DLC tags end in the OS (aws-neuron/deep-learning-containers release notes).
    "public.ecr.aws/neuron/pytorch-inference-vllm-neuronx:0.9.1-neuronx-py310-sdk2.25.0-ubuntu22.04"
)
RAY_IMAGES = {
    "nvidia": f"rayproject/ray-llm:{RAY_VERSION}-py311-cu128",
    # The Neuron DLC has vLLM but no Ray: workers run Corral's image built on it
    # (deploy/images/ray-neuronx/Containerfile), with the Ray version and Python of the head.
    "neuron": f"ghcr.io/corral-dev/ray-neuronx:{RAY_VERSION}-py310-sdk2.25.0",
    "cpu": f"rayproject/ray-llm:{RAY_VERSION}-py311-cpu",
}
RAY_HEAD_IMAGES = {
    **RAY_IMAGES,
    # The head runs no replica, so it needs Ray only: same Ray version and Python as the workers.
    "neuron": f"rayproject/ray:{RAY_VERSION}-py310-cpu",
}
VLLM_IMAGES = {
    "nvidia": "vllm/vllm-openai:v0.11.0",
    "neuron": NEURON_VLLM_IMAGE,
    "cpu": "public.ecr.aws/q9t5s3a7/vllm-cpu-release-repo:v0.11.0",
}
STREAMER_ENV = {"RUNAI_STREAMER_CONCURRENCY": "16"}
"""Concurrent S3 reads of vLLM's Run:ai model streamer (its documented default, written out so
the cold-start estimate in ``planner.cold_start`` and the pod agree; vLLM docs, "Loading models
with Run:ai Model Streamer")."""
AWS_CLI_IMAGE = "public.ecr.aws/aws-cli/aws-cli:2.27.0"


def device_of(spec: DeploymentSpec) -> Accelerator:
    return ACCELERATORS[spec.accelerator.type]


def nodepool_name(spec: DeploymentSpec) -> str:
    return f"corral-{spec.name}"


def discovery_selectors(cluster_name: str) -> dict[str, Any]:
    """Subnets and security groups a node class selects: those tagged
    ``karpenter.sh/discovery: <cluster>`` (Karpenter's getting-started convention, kept for Auto
    Mode's NodeClass so one set of tags serves both)."""
    tags = {"karpenter.sh/discovery": cluster_name}
    return {
        "subnetSelectorTerms": [{"tags": dict(tags)}],
        "securityGroupSelectorTerms": [{"tags": dict(tags)}],
    }


def node_class_tags(spec: DeploymentSpec) -> dict[str, str]:
    """EC2 tags on the deployment's instances, for cost allocation and cleanup."""
    return {DEPLOYMENT_LABEL: spec.name, MANAGED_BY: "corral"}


def owned_labels(spec: DeploymentSpec) -> dict[str, str]:
    """Labels on every object Corral renders for this deployment (undeploy selects on them)."""
    return {**spec.labels, MANAGED_BY: "corral", DEPLOYMENT_LABEL: spec.name}


def service_annotations(spec: DeploymentSpec) -> dict[str, str]:
    """What a gateway needs to route the model to its Service (``corral.control.discovery``)."""
    return {
        MODEL_ANNOTATION: spec.served_name,
        PORT_ANNOTATION: str(SERVE_PORT),
        MIN_REPLICAS_ANNOTATION: str(spec.replicas.min),
    }


def pod_labels(spec: DeploymentSpec, role: str) -> dict[str, str]:
    return {**owned_labels(spec), "app.kubernetes.io/name": spec.name, ROLE_LABEL: role}


def metadata(spec: DeploymentSpec, name: str, *, namespaced: bool = True) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "labels": owned_labels(spec)}
    if namespaced:
        meta["namespace"] = spec.namespace
    return meta


def model_source(spec: DeploymentSpec) -> str:
    """What vLLM loads: the Hugging Face id, or the path the weights are mounted or copied to."""
    source = spec.model
    if source.kind == "huggingface":
        return source.source
    if source.kind == "s3" and source.s3_mode == "init-container":
        return MODEL_DIR
    if source.kind == "s3" and source.s3_mode == "stream":
        return source.source  # vLLM's Run:ai streamer reads s3:// URIs itself
    rest = source.source.split("://", 1)[1]
    path = rest.split("/", 1)[1] if source.kind == "pvc" and "/" in rest else ""
    return f"{MODEL_DIR}/{path}".rstrip("/")


def weights_claim(spec: DeploymentSpec) -> str | None:
    """The PersistentVolumeClaim holding the weights, if any."""
    if spec.model.kind == "pvc":
        return spec.model.source.removeprefix("pvc://").split("/", 1)[0]
    if spec.model.kind == "s3" and spec.model.s3_mode == "mountpoint":
        return f"{spec.name}-weights"
    return None


def env(spec: DeploymentSpec) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = multi_node.efa_env() if multi_node.is_multi_node(spec) else []
    if spec.model.kind == "huggingface" and device_of(spec).vendor != "cpu":
        out.append({"name": "HF_HOME", "value": HF_HOME})
    if spec.model.hf_token_secret:
        ref = {"name": spec.model.hf_token_secret, "key": "hf-token"}
        out.append({"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": ref}})
    if spec.model.kind == "s3" and spec.model.s3_mode == "stream":
        # The streamer's S3 client (AWS SDK) takes credentials from the pod's identity (EKS Pod
        # Identity or IRSA) and the bucket's region from the environment.
        if spec.model.s3_region:
            out.append({"name": "AWS_REGION", "value": spec.model.s3_region})
        out += [{"name": k, "value": v} for k, v in STREAMER_ENV.items()]
    return out


def volumes(
    spec: DeploymentSpec, *, weights: bool = True
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Pod volumes and the matching container mounts: shared memory and (if asked) the weights."""
    vols: list[dict[str, Any]] = [{"name": "dshm", "emptyDir": {"medium": "Memory"}}]
    # NCCL and vLLM's tensor-parallel workers share tensors through /dev/shm.
    mounts: list[dict[str, Any]] = [{"name": "dshm", "mountPath": "/dev/shm"}]  # noqa: S108 - the pod's shared-memory mount, not a temp file
    claim = weights_claim(spec)
    if not weights:
        return vols, mounts
    if claim is not None:
        vols.append(
            {"name": "weights", "persistentVolumeClaim": {"claimName": claim, "readOnly": True}}
        )
        mounts.append({"name": "weights", "mountPath": MODEL_DIR, "readOnly": True})
    elif spec.model.kind == "s3" and spec.model.s3_mode == "init-container":
        size = f"{disk.pod_ephemeral_gib(spec)}Gi"
        vols.append({"name": "weights", "emptyDir": {"sizeLimit": size}})
        mounts.append({"name": "weights", "mountPath": MODEL_DIR})
    elif spec.model.kind == "huggingface" and device_of(spec).vendor != "cpu":
        vols.append(model_cache_volume(spec))
        mounts.append({"name": "model-cache", "mountPath": HF_HOME})
    return vols, mounts


def model_cache_volume(spec: DeploymentSpec) -> dict[str, Any]:
    """One Hugging Face cache per node, shared by the deployment's replicas on it, so two
    replicas on a node download and store the weights once (huggingface_hub locks the files it
    downloads, so concurrent replicas do not clash). On NVMe RAID0 nodes the path is on the
    array; elsewhere on the node's volume, which ``planner.disk`` sizes for it."""
    path = f"{MODEL_CACHE_HOST_DIR}/{spec.namespace}-{spec.name}"
    return {"name": "model-cache", "hostPath": {"path": path, "type": "DirectoryOrCreate"}}


def init_containers(spec: DeploymentSpec) -> dict[str, Any]:
    """``initContainers`` with one that copies S3 weights, when the spec asks for copying."""
    if spec.model.kind != "s3" or spec.model.s3_mode != "init-container":
        return {}
    args = ["s3", "sync", "--only-show-errors", spec.model.source, MODEL_DIR]
    if spec.model.s3_region:
        args += ["--region", spec.model.s3_region]
    fetch = {
        "name": "fetch-weights",
        "image": AWS_CLI_IMAGE,
        "args": args,
        "volumeMounts": [{"name": "weights", "mountPath": MODEL_DIR}],
    }
    return {"initContainers": [fetch]}


def placement(spec: DeploymentSpec) -> dict[str, Any]:
    """nodeSelector, tolerations and priority class for accelerator pods."""
    device = device_of(spec)
    out: dict[str, Any] = {"priorityClassName": f"corral-{spec.priority}"}
    if spec.capacity.provisioner != "none" and device.vendor != "cpu":
        out["nodeSelector"] = {NODEPOOL_LABEL: nodepool_name(spec)}
    if device.resource is not None:
        out["tolerations"] = [
            {"key": device.resource, "operator": "Exists", "effect": "NoSchedule"}
        ]
    if device.vendor == "neuron" and spec.capacity.provisioner != "auto-mode":
        out["schedulerName"] = NEURON_SCHEDULER
    return out


def replica_resources(spec: DeploymentSpec, table: PriceTable) -> dict[str, Any]:
    """Requests and limits for one replica: its devices, and a fair share of the host."""
    device = device_of(spec)
    devices = spec.accelerator.devices_per_node
    hosts = table.for_accelerator(device.name, max(1, devices))
    if multi_node.is_multi_node(spec):
        hosts = [i for i in hosts if multi_node.efa_capable(i)]
    if device.vendor == "cpu" or not hosts:
        cpu, mem = 4, 16
    else:
        host = min(hosts, key=lambda i: i.count)
        share = devices / host.count
        # A share of what the kubelet offers (after EKS reservations and DaemonSets), so the
        # pod fits the smallest instance that carries its devices.
        alloc_cpu, alloc_gib = allocatable_cpu_memory(host)
        cpu = max(1, int(alloc_cpu * share))
        mem = max(4, int(alloc_gib * share * 0.9))
    amounts: dict[str, Any] = {"cpu": str(cpu), "memory": f"{mem}Gi"}
    if device.resource is not None:
        amounts[device.resource] = str(devices)
    if multi_node.is_multi_node(spec):
        amounts[multi_node.EFA_RESOURCE] = str(multi_node.efa_interfaces(hosts))
    # Ephemeral storage is requested (the scheduler then counts it) but not limited: a limit
    # would evict a replica whose compile caches grow, and it does not affect the QoS class.
    requests = {**amounts, "ephemeral-storage": f"{disk.pod_ephemeral_gib(spec)}Gi"}
    return {"requests": requests, "limits": dict(amounts)}

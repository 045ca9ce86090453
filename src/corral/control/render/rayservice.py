"""The KubeRay RayService running a Ray Serve LLM app (NVIDIA, Neuron or CPU workers)."""

from __future__ import annotations

import json
from typing import Any

from corral.control.planner.instances import PriceTable
from corral.control.render import common, multi_node
from corral.control.serve_config import (
    AutoscalingConfig,
    DeploymentConfig,
    LLMConfig,
    ModelLoadingConfig,
    OpenAIAppArgs,
    PlacementGroupConfig,
    ServeApplication,
    ServeConfig,
)
from corral.control.spec import DeploymentSpec
from corral.kube.port import Manifest

WORKER_IDLE_TIMEOUT_S = 60
"""Seconds the Ray autoscaler keeps a GPU worker pod with no replica; Karpenter then removes the
empty node after ``capacity.consolidate_after``. Simulated on the Azure code trace and a
diurnal/bursty trace (bench/simulation/RESULTS.md), 60 s + 60 s of node idle uses 10-23% fewer
GPU-hours than 300 s + 300 s at the default upscaling factor, with as many SLO minutes."""

STREAM_LOAD_FORMAT = "runai_streamer"


def serve_config(spec: DeploymentSpec) -> ServeConfig:
    """The Ray Serve LLM application for the spec."""
    device = common.device_of(spec)
    replicas = spec.replicas
    llm = LLMConfig(
        model_loading_config=ModelLoadingConfig(
            model_id=spec.served_name, model_source=common.model_source(spec)
        ),
        accelerator_type=device.ray_accelerator_type,
        engine_kwargs=engine_kwargs(spec),
        deployment_config=DeploymentConfig(
            autoscaling_config=AutoscalingConfig(
                min_replicas=replicas.min,
                max_replicas=replicas.max,
                target_ongoing_requests=replicas.target_ongoing_requests,
                upscale_delay_s=replicas.upscale_delay_s,
                downscale_delay_s=replicas.downscale_delay_s,
                upscaling_factor=replicas.upscaling_factor,
            ),
            max_ongoing_requests=replicas.max_ongoing_requests,
        ),
        placement_group_config=_bundles(spec),
    )
    app = ServeApplication(name=spec.name, args=OpenAIAppArgs(llm_configs=[llm]))
    return ServeConfig(applications=[app])


def engine_kwargs(spec: DeploymentSpec) -> dict[str, Any]:
    """vLLM engine arguments from the spec (snake_case, as vLLM's EngineArgs names them)."""
    engine = spec.engine
    kwargs: dict[str, Any] = {
        "dtype": spec.dtype,
        "max_model_len": engine.max_model_len,
        "max_num_seqs": engine.max_num_seqs,
        "tensor_parallel_size": spec.accelerator.tensor_parallel,
        "pipeline_parallel_size": spec.accelerator.pipeline_parallel,
    }
    vendor = common.device_of(spec).vendor
    if vendor == "nvidia":
        kwargs["gpu_memory_utilization"] = engine.gpu_memory_utilization
    else:
        kwargs["device"] = vendor
    if engine.quantization != "none":
        kwargs["quantization"] = engine.quantization
    if engine.kv_cache_dtype != "auto":
        kwargs["kv_cache_dtype"] = engine.kv_cache_dtype
    if spec.model.kind == "s3" and spec.model.s3_mode == "stream":
        # Weights go from S3 straight into device memory, no local copy (vLLM: load_format
        # runai_streamer; Ray Serve LLM then skips its own download: STREAMING_LOAD_FORMATS in
        # ray/llm/_internal/common/utils/download_utils.py).
        kwargs["load_format"] = STREAM_LOAD_FORMAT
    kwargs.update(engine.extra_args)
    return kwargs


def _bundles(spec: DeploymentSpec) -> PlacementGroupConfig | None:
    """Explicit bundles where Ray Serve LLM's default (one GPU per TP×PP device) is wrong.

    Without a placement config Ray Serve LLM resolves to ``GPUConfig`` and asks for GPUs
    (ray/llm/_internal/serve/core/configs/llm_config.py ``_resolve_accelerator_config``); bundles
    without GPUs resolve to ``CPUConfig`` (``infer_hardware_kind_from_bundles``), which Neuron
    and CPU replicas need.
    """
    device = common.device_of(spec)
    if device.vendor == "cpu":
        return PlacementGroupConfig(bundles=[{"CPU": 1.0}])
    if device.vendor != "neuron":
        return None
    cores = spec.accelerator.devices * device.cores_per_device
    return PlacementGroupConfig(bundles=[{"CPU": 1.0, "neuron_cores": float(cores)}])


def render_rayservice(spec: DeploymentSpec, table: PriceTable) -> Manifest:
    """The RayService: serve config, a head with no accelerators, one accelerator worker group."""
    vendor = common.device_of(spec).vendor
    image = spec.engine.image or common.RAY_IMAGES[vendor]
    head_image = spec.engine.image or common.RAY_HEAD_IMAGES[vendor]
    return {
        "apiVersion": "ray.io/v1",
        "kind": "RayService",
        "metadata": common.metadata(spec, spec.name),
        "spec": {
            "serveConfigV2": serve_config(spec).to_yaml(),
            "rayClusterConfig": {
                "rayVersion": common.RAY_VERSION,
                "enableInTreeAutoscaling": True,
                "autoscalerOptions": {
                    "idleTimeoutSeconds": WORKER_IDLE_TIMEOUT_S,
                    "upscalingMode": "Default",
                },
                "headGroupSpec": _head(spec, head_image),
                "workerGroupSpecs": [_workers(spec, image, table)],
            },
        },
    }


def _ports(*names: tuple[str, int]) -> list[dict[str, Any]]:
    return [{"name": n, "containerPort": p, "protocol": "TCP"} for n, p in names]


def _head(spec: DeploymentSpec, image: str) -> dict[str, Any]:
    # The head runs no replicas (num-cpus 0), so it needs no weights.
    vols, mounts = common.volumes(spec, weights=False)
    container = {
        "name": "ray-head",
        "image": image,
        "ports": _ports(
            ("gcs", 6379),
            ("dashboard", 8265),
            ("client", 10001),
            ("serve", common.SERVE_PORT),
            ("metrics", common.METRICS_PORT),
        ),
        "env": common.env(spec),
        "resources": {
            "requests": {"cpu": "2", "memory": "8Gi"},
            "limits": {"cpu": "2", "memory": "8Gi"},
        },
        "volumeMounts": mounts,
    }
    return {
        "rayStartParams": {"num-cpus": "0", "dashboard-host": "0.0.0.0"},  # noqa: S104 - in-pod bind
        "template": {
            "metadata": {"labels": common.pod_labels(spec, "head")},
            "spec": {
                "serviceAccountName": spec.name,
                "priorityClassName": f"corral-{spec.priority}",
                "containers": [container],
                "volumes": vols,
            },
        },
    }


def _cluster_pods(spec: DeploymentSpec) -> dict[str, str]:
    """The Ray workers, kept in one zone for a multi-node replica. Not the head: it carries no
    replica and lands on any node, and tying workers to its zone would fight capacity.zone."""
    return {common.DEPLOYMENT_LABEL: spec.name, common.ROLE_LABEL: "worker"}


def advertised_resources(spec: DeploymentSpec) -> dict[str, int]:
    """Custom Ray resources a worker group must declare for the autoscaler to launch it.

    Ray's KubeRay autoscaler derives a group's resources only from its CPU/GPU/memory and
    ``rayStartParams.resources`` (ray/autoscaler/_private/kuberay/autoscaling_config.py,
    ``_get_ray_resources_from_group_spec`` and ``_get_custom_resources``), while Ray Serve LLM adds
    ``accelerator_type:<type>: 0.001`` to every bundle when ``accelerator_type`` is set
    (ray/llm/_internal/serve/core/configs/accelerators.py, ``GPUAccelerator.default_bundles``).
    Without declaring it here, demand looks infeasible and no worker is ever added. Ray sets the
    same resource to 1 on a node it detects the accelerator on, so the value agrees at runtime.
    Neuron cores are an extended resource Ray's derivation does not read from pod limits.
    """
    device = common.device_of(spec)
    out: dict[str, int] = {}
    if device.ray_accelerator_type is not None:
        out[f"accelerator_type:{device.ray_accelerator_type}"] = 1
    if device.vendor == "neuron":
        out["neuron_cores"] = spec.accelerator.devices * device.cores_per_device
    return out


def _workers(spec: DeploymentSpec, image: str, table: PriceTable) -> dict[str, Any]:
    device = common.device_of(spec)
    vols, mounts = common.volumes(spec)
    start: dict[str, str] = {}
    advertised = advertised_resources(spec)
    if advertised:
        start["resources"] = json.dumps(json.dumps(advertised))
    container = {
        "name": "ray-worker",
        "image": image,
        "ports": _ports(("metrics", common.METRICS_PORT)),
        "env": common.env(spec),
        "resources": common.replica_resources(spec, table),
        "volumeMounts": mounts,
        **multi_node.multi_node_container(spec),
    }
    # A group replica is numOfHosts pods, which KubeRay creates and deletes together, so one
    # replica spanning nodes is one group replica; Ray's autoscaler counts numOfHosts workers per
    # group replica (autoscaling_config.py: min_workers = minReplicas * numOfHosts).
    return {
        "groupName": f"{device.name}-workers",
        "replicas": spec.replicas.min,
        "minReplicas": spec.replicas.min,
        "maxReplicas": spec.replicas.max,
        "numOfHosts": spec.accelerator.nodes,
        "rayStartParams": start,
        "template": {
            "metadata": {
                "labels": common.pod_labels(spec, "worker"),
                "annotations": dict(common.SERVING_POD_ANNOTATIONS),
            },
            "spec": {
                "serviceAccountName": spec.name,
                **common.placement(spec),
                **multi_node.multi_node_pod(spec, _cluster_pods(spec)),
                **common.init_containers(spec),
                "containers": [container],
                "volumes": vols,
            },
        },
    }

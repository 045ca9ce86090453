"""The KubeRay RayService running a Ray Serve LLM app (NVIDIA, Neuron or CPU workers)."""

from __future__ import annotations

import json
from typing import Any

from corral.control.planner.instances import PriceTable
from corral.control.render import common
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
diurnal/bursty trace (bench/simulation/RESULTS.md), 60 s costs less than 300 s for the same SLO
minutes: a burst that returns within minutes usually finds the node still up anyway."""


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
        placement_group_config=_neuron_bundles(spec),
    )
    app = ServeApplication(name=spec.name, args=OpenAIAppArgs(llm_configs=[llm]))
    return ServeConfig(applications=[app])


def engine_kwargs(spec: DeploymentSpec) -> dict[str, Any]:
    """vLLM engine arguments from the spec (snake_case, as vLLM's EngineArgs names them)."""
    engine = spec.engine
    kwargs: dict[str, Any] = {
        "dtype": engine.dtype,
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
    kwargs.update(engine.extra_args)
    return kwargs


def _neuron_bundles(spec: DeploymentSpec) -> PlacementGroupConfig | None:
    device = common.device_of(spec)
    if device.vendor != "neuron":
        return None
    cores = spec.accelerator.devices * device.cores_per_device
    return PlacementGroupConfig(bundles=[{"CPU": 1.0, "neuron_cores": float(cores)}])


def render_rayservice(spec: DeploymentSpec, table: PriceTable) -> Manifest:
    """The RayService: serve config, a head with no accelerators, one accelerator worker group."""
    image = spec.engine.image or common.RAY_IMAGES[common.device_of(spec).vendor]
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
                "headGroupSpec": _head(spec, image),
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


def _workers(spec: DeploymentSpec, image: str, table: PriceTable) -> dict[str, Any]:
    device = common.device_of(spec)
    vols, mounts = common.volumes(spec)
    start: dict[str, str] = {}
    if device.vendor == "neuron":
        cores = spec.accelerator.devices * device.cores_per_device
        start["resources"] = json.dumps(json.dumps({"neuron_cores": cores}))
    container = {
        "name": "ray-worker",
        "image": image,
        "ports": _ports(("metrics", common.METRICS_PORT)),
        "env": common.env(spec),
        "resources": common.replica_resources(spec, table),
        "volumeMounts": mounts,
    }
    return {
        "groupName": f"{device.name}-workers",
        "replicas": spec.replicas.min,
        "minReplicas": spec.replicas.min,
        "maxReplicas": spec.replicas.max,
        "numOfHosts": 1,
        "rayStartParams": start,
        "template": {
            "metadata": {"labels": common.pod_labels(spec, "worker")},
            "spec": {
                "serviceAccountName": spec.name,
                **common.placement(spec),
                **common.init_containers(spec),
                "containers": [container],
                "volumes": vols,
            },
        },
    }

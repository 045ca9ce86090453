"""A deployment spec as a Ray Serve application: Corral replicas on CPU, Ray Serve LLM on GPUs."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from corral.control.render.rayservice import serve_config
from corral.control.spec import DeploymentSpec
from corral.engines.ray.application import (
    CORRAL_APP_PATH,
    LLM_APP_PATH,
    Autoscaling,
    CorralAppArgs,
    RayApplication,
    ReplicaOptions,
)

TOKENS_PER_SEQUENCE = 512
"""Tokens in flight one batched sequence stands for, when sizing the LLM-aware target."""


def autoscaling(spec: DeploymentSpec, *, look_back_period_s: float = 30.0) -> Autoscaling:
    """The spec's replica bounds and delays, with the LLM-aware tokens-in-flight target.

    A replica batches ``max_num_seqs`` sequences; aiming at that many average-length
    sequences in flight per replica scales on work, not on request count.
    """
    replicas = spec.replicas
    return Autoscaling(
        min_replicas=replicas.min,
        max_replicas=replicas.max,
        target_ongoing_requests=replicas.target_ongoing_requests,
        upscale_delay_s=replicas.upscale_delay_s,
        downscale_delay_s=replicas.downscale_delay_s,
        look_back_period_s=look_back_period_s,
        upscaling_factor=replicas.upscaling_factor,
        target_tokens_in_flight=float(spec.engine.max_num_seqs * TOKENS_PER_SEQUENCE),
    )


def ray_application(
    spec: DeploymentSpec,
    *,
    data_dir: Path,
    cpu_engine: Literal["local", "fake"] = "local",
    fake_script: dict[str, Any] | None = None,
) -> RayApplication:
    """The Ray Serve application for ``spec`` (accelerator cpu: Corral replicas; else vLLM)."""
    if spec.accelerator.type == "cpu":
        return _cpu_application(spec, data_dir, cpu_engine, fake_script or {})
    return _llm_application(spec)


def _cpu_application(
    spec: DeploymentSpec,
    data_dir: Path,
    engine: Literal["local", "fake"],
    fake_script: dict[str, Any],
) -> RayApplication:
    replicas = spec.replicas
    if engine == "local":
        engine_config: dict[str, Any] = {
            "model": spec.model.source,
            "max_batch_size": min(spec.engine.max_num_seqs, 64),
            "max_queue": replicas.max_ongoing_requests,
            "context_length": spec.engine.max_model_len,
            "threads": 1,
        }
    else:
        engine_config = dict(fake_script)
    args = CorralAppArgs(
        served_name=spec.served_name,
        engine=engine,
        engine_config=engine_config,
        data_dir=str(data_dir.resolve()),
        options=ReplicaOptions(
            autoscaling=autoscaling(spec),
            max_ongoing_requests=replicas.max_ongoing_requests,
        ),
    )
    return RayApplication(
        name=spec.name,
        served_name=spec.served_name,
        import_path=CORRAL_APP_PATH,
        args=args.to_ray(),
        variant="cpu",
    )


def _llm_application(spec: DeploymentSpec) -> RayApplication:
    """Ray Serve LLM with the same LLMConfig the KubeRay RayService gets, plus scale-to-zero."""
    llm_app = serve_config(spec).applications[0]
    args = llm_app.args.model_dump(mode="json", exclude_none=True)
    for llm in args["llm_configs"]:
        ray_autoscaling = llm["deployment_config"]["autoscaling_config"]
        if spec.replicas.min == 0:
            ray_autoscaling["initial_replicas"] = 0
    return RayApplication(
        name=spec.name,
        served_name=spec.served_name,
        import_path=LLM_APP_PATH,
        args=args,
        variant="gpu",
    )

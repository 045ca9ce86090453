"""A typed model of the Ray Serve config (``serveConfigV2``) for a Ray Serve LLM application."""

from __future__ import annotations

from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field


class _Serve(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelLoadingConfig(_Serve):
    """Ray Serve LLM: the name clients use and where the weights are."""

    model_id: str
    model_source: str


class AutoscalingConfig(_Serve):
    """Ray Serve replica autoscaling (ongoing requests per replica)."""

    min_replicas: int = Field(ge=0)
    max_replicas: int = Field(ge=1)
    target_ongoing_requests: int = Field(ge=1)
    upscale_delay_s: float = Field(ge=0)
    downscale_delay_s: float = Field(ge=0)
    upscaling_factor: float | None = Field(None, gt=0)


class DeploymentConfig(_Serve):
    """Ray Serve deployment options."""

    autoscaling_config: AutoscalingConfig
    max_ongoing_requests: int = Field(ge=1)


class PlacementGroupConfig(_Serve):
    """Resource bundles for one replica (used for Neuron, where Ray knows no accelerator_type)."""

    bundles: list[dict[str, float]]
    strategy: Literal["PACK", "STRICT_PACK", "SPREAD", "STRICT_SPREAD"] = "STRICT_PACK"


class LLMConfig(_Serve):
    """``ray.serve.llm.LLMConfig``: one model served by vLLM."""

    model_loading_config: ModelLoadingConfig
    llm_engine: Literal["vLLM"] = "vLLM"
    accelerator_type: str | None = None
    engine_kwargs: dict[str, Any]
    deployment_config: DeploymentConfig
    placement_group_config: PlacementGroupConfig | None = None
    runtime_env: dict[str, Any] | None = None
    log_engine_metrics: bool = True


class OpenAIAppArgs(_Serve):
    """Arguments of ``ray.serve.llm:build_openai_app``."""

    llm_configs: list[LLMConfig] = Field(min_length=1)


class ServeApplication(_Serve):
    """One Serve application."""

    name: str
    import_path: str = "ray.serve.llm:build_openai_app"
    route_prefix: str = "/"
    args: OpenAIAppArgs


class HTTPOptions(_Serve):
    """Where Serve's HTTP proxies listen."""

    host: str = "0.0.0.0"  # noqa: S104 - proxies must accept traffic from the Service
    port: int = 8000


class ServeConfig(_Serve):
    """The whole ``serveConfigV2`` document."""

    proxy_location: Literal["EveryNode", "HeadOnly", "Disabled"] = "EveryNode"
    http_options: HTTPOptions = Field(default_factory=HTTPOptions)
    applications: list[ServeApplication] = Field(min_length=1)

    def to_yaml(self) -> str:
        """The config as the YAML string KubeRay's ``serveConfigV2`` field takes."""
        data = self.model_dump(mode="json", exclude_none=True)
        return yaml.safe_dump(data, sort_keys=False, default_flow_style=False)

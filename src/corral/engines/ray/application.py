"""A Ray Serve application as plain data: what the deployer runs and the gateway routes to."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from corral.engines.ray.autoscaling import POLICY_PATH

CORRAL_APP_PATH = "corral.engines.ray.serve_app:build_app"
"""Builds the CPU application: Corral replicas hosting the local (or fake) engine."""
LLM_APP_PATH = "ray.serve.llm:build_openai_app"
"""Builds the GPU application: Ray Serve LLM with vLLM."""


@dataclass(frozen=True)
class Autoscaling:
    """Replica bounds and how fast to follow load (Ray Serve ``autoscaling_config``)."""

    min_replicas: int
    max_replicas: int
    target_ongoing_requests: float
    upscale_delay_s: float
    downscale_delay_s: float
    downscale_to_zero_delay_s: float | None = None
    """Idle time before the last replica stops; None: ``downscale_delay_s``."""
    look_back_period_s: float = 30.0
    """Window the load metrics are averaged over."""
    target_tokens_in_flight: float | None = None
    """Tokens in flight per replica for the LLM-aware policy; None: Ray's request policy."""
    upscaling_factor: float | None = None
    """Share of the gap to the wanted replicas added per scale-up; None: Ray's default (1)."""

    def to_ray(self) -> dict[str, Any]:
        """The ``autoscaling_config`` mapping Ray Serve takes."""
        config: dict[str, Any] = {
            "min_replicas": self.min_replicas,
            "max_replicas": self.max_replicas,
            "target_ongoing_requests": self.target_ongoing_requests,
            "upscale_delay_s": self.upscale_delay_s,
            "downscale_delay_s": self.downscale_delay_s,
            "look_back_period_s": self.look_back_period_s,
        }
        if self.min_replicas == 0:
            # Scale from zero starts one replica; Ray's own default would be min_replicas.
            config["initial_replicas"] = 0
        if self.upscaling_factor is not None:
            config["upscaling_factor"] = self.upscaling_factor
        if self.downscale_to_zero_delay_s is not None:
            config["downscale_to_zero_delay_s"] = self.downscale_to_zero_delay_s
        if self.target_tokens_in_flight is not None:
            config["policy"] = {
                "policy_function": POLICY_PATH,
                "policy_kwargs": {
                    "target_ongoing_requests": self.target_ongoing_requests,
                    "target_tokens_in_flight": self.target_tokens_in_flight,
                },
            }
        return config


@dataclass(frozen=True)
class ReplicaOptions:
    """Options of the Corral replica deployment (CPU variant)."""

    autoscaling: Autoscaling
    max_ongoing_requests: int
    num_cpus: float = 1.0
    graceful_shutdown_timeout_s: float = 120.0
    """How long a stopping replica may finish its open streams (scale-down drains)."""

    def to_ray(self) -> dict[str, Any]:
        """Keyword arguments of ``Deployment.options``."""
        return {
            "autoscaling_config": self.autoscaling.to_ray(),
            "max_ongoing_requests": self.max_ongoing_requests,
            "ray_actor_options": {"num_cpus": self.num_cpus},
            "graceful_shutdown_wait_loop_s": 1.0,
            "graceful_shutdown_timeout_s": self.graceful_shutdown_timeout_s,
            "health_check_period_s": 5.0,
        }


EngineKind = Literal["local", "fake"]


@dataclass(frozen=True)
class CorralAppArgs:
    """Arguments of the CPU application (JSON-safe, so ``serve deploy`` configs can hold them)."""

    served_name: str
    engine: EngineKind
    engine_config: dict[str, Any]
    """LocalEngineConfig fields for ``local``; FakeScript fields for ``fake``."""
    data_dir: str
    options: ReplicaOptions

    def to_ray(self) -> dict[str, Any]:
        return {
            "served_name": self.served_name,
            "engine": self.engine,
            "engine_config": self.engine_config,
            "data_dir": self.data_dir,
            "deployment": self.options.to_ray(),
        }


@dataclass(frozen=True)
class RayApplication:
    """One Serve application: its name, where it is mounted, and how Ray builds it."""

    name: str
    served_name: str
    import_path: str
    args: dict[str, Any]
    route_prefix: str = ""
    variant: Literal["cpu", "gpu"] = "cpu"
    runtime_env: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.route_prefix:
            object.__setattr__(self, "route_prefix", f"/{self.name}")

    def to_serve_config(self) -> dict[str, Any]:
        """The application entry of a Serve config file (``serve deploy`` / serveConfigV2)."""
        entry: dict[str, Any] = {
            "name": self.name,
            "import_path": self.import_path,
            "route_prefix": self.route_prefix,
            "args": self.args,
        }
        if self.runtime_env:
            entry["runtime_env"] = self.runtime_env
        return entry

    def base_url(self, serve_http: str) -> str:
        """The OpenAI base URL under the Serve proxy at ``serve_http`` (http://host:port)."""
        return f"{serve_http.rstrip('/')}{self.route_prefix}/v1"

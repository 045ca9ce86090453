"""Ray Serve's own autoscaling code (policy, factors, delays) driven on the simulated clock."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from typing import Any

from corral.control.ray_target import autoscaling as corral_autoscaling
from corral.control.render.rayservice import serve_config
from corral.control.spec import DeploymentSpec
from corral.engines.ray.autoscaling import TOKENS_IN_FLIGHT, LLMAwarePolicy
from corral.errors import ConfigError
from corral.simulation.autoscalers import LoadSample, SampleWindow

RAY_DEFAULT = "ray-default"
"""Ray Serve's request-queue policy: what the KubeRay RayService ``corral deploy`` renders runs."""
CORRAL_LLM_AWARE = "corral-llm-aware"
"""Corral's tokens-in-flight policy (``corral deploy --target ray``'s Corral replicas)."""


def _ray() -> Any:
    try:
        from ray.serve import autoscaling_policy
        from ray.serve._private import constants
        from ray.serve._private.common import DeploymentID
        from ray.serve.config import AutoscalingConfig, AutoscalingContext
    except ImportError as exc:
        raise ConfigError(
            "simulating a Ray Serve autoscaler runs Ray's own policy code: install the ray "
            "extra (pip install 'corral[ray]'), or simulate --policy hpa"
        ) from exc

    class Modules:
        policy = autoscaling_policy
        ray_constants = constants
        deployment_id = DeploymentID
        config = AutoscalingConfig
        context = AutoscalingContext

    return Modules


class _SimulatedTime:
    """Stands in for the ``time`` module inside Ray's policy module while it decides."""

    def __init__(self) -> None:
        self.now = 0.0

    def time(self) -> float:
        return self.now


@contextlib.contextmanager
def _on_clock(module: Any, clock: _SimulatedTime) -> Iterator[None]:
    # Ray's delay logic reads time.time(); the simulator's clock replaces it for one call.
    real = module.time
    module.time = clock
    try:
        yield
    finally:
        module.time = real


def rendered_autoscaling_config(spec: DeploymentSpec) -> dict[str, Any]:
    """The ``autoscaling_config`` of the RayService's serve config, as ``corral deploy`` renders."""
    llm = serve_config(spec).applications[0].args.llm_configs[0]
    return llm.deployment_config.autoscaling_config.model_dump(mode="json", exclude_none=True)


class RayServeAutoscaler:
    """The Serve controller's autoscaling loop for one deployment.

    Every control-loop period the controller builds an ``AutoscalingContext`` whose
    ``total_num_requests`` is the mean of the samples replicas and handles recorded over
    ``look_back_period_s`` and pushed so far, calls the policy wrapped by Ray's
    ``_apply_autoscaling_config`` (cold-start fast path, scaling factors, upscale/downscale
    delays) and clips the answer to the replica bounds, as ``AutoscalingState`` does.
    """

    def __init__(self, spec: DeploymentSpec, policy: str = RAY_DEFAULT) -> None:
        ray = _ray()
        settings = corral_autoscaling(spec)
        self._wrapped: Callable[[Any], tuple[int, dict[str, Any]]]
        if policy == CORRAL_LLM_AWARE:
            config: dict[str, Any] = settings.to_ray()
            config.pop("policy", None)
            custom = LLMAwarePolicy(
                target_ongoing_requests=settings.target_ongoing_requests,
                target_tokens_in_flight=settings.target_tokens_in_flight,
            )
            self._wrapped = ray.policy._apply_autoscaling_config(custom)
        elif policy == RAY_DEFAULT:
            config = rendered_autoscaling_config(spec)
            self._wrapped = ray.policy._apply_autoscaling_config(
                ray.policy.replica_queue_length_autoscaling_policy
            )
        else:
            raise ConfigError(f"unknown Ray Serve policy {policy!r}")
        self._config = ray.config(**config)
        self._ray = ray
        self._id = ray.deployment_id(name=spec.name, app_name=spec.name)
        constants = ray.ray_constants
        self.name = policy
        self.interval_s = float(constants.CONTROL_LOOP_INTERVAL_S)
        self.sample_interval_s = float(
            self._config.look_back_period_s
            * constants.RAY_SERVE_AUTOSCALING_METRIC_RECORD_INTERVAL_FACTOR
        )
        self._window = SampleWindow(
            self._config.look_back_period_s,
            float(constants.RAY_SERVE_REPLICA_AUTOSCALING_METRIC_PUSH_INTERVAL_S),
        )
        self._state: dict[str, Any] = {}
        self._clock = _SimulatedTime()

    @property
    def config(self) -> Any:
        """Ray's ``AutoscalingConfig`` built from the spec (what the controller validates)."""
        return self._config

    def observe(self, sample: LoadSample) -> None:
        self._window.add(sample)

    def decide(self, now: float, running: int, target: int) -> int:
        seen = self._window.visible(now)
        total = sum(s.total_requests for s in seen) / len(seen) if seen else 0.0
        tokens = sum(s.tokens_in_flight for s in seen) / len(seen) if seen else 0.0
        context = self._ray.context(
            deployment_id=self._id,
            deployment_name=self._id.name,
            app_name=self._id.app_name,
            current_num_replicas=running,
            target_num_replicas=target,
            running_replicas=[f"replica-{i}" for i in range(running)],
            total_num_requests=total,
            total_queued_requests=None,
            aggregated_metrics={TOKENS_IN_FLIGHT: {"all": tokens}},
            raw_metrics=None,
            capacity_adjusted_min_replicas=self._config.min_replicas,
            capacity_adjusted_max_replicas=self._config.max_replicas,
            policy_state=dict(self._state),
            last_scale_up_time=None,
            last_scale_down_time=None,
            current_time=now,
            config=self._config,
        )
        self._clock.now = now
        with _on_clock(self._ray.policy, self._clock):
            decision, self._state = self._wrapped(context)
        wanted = math.ceil(float(decision))
        least: int = self._config.min_replicas
        most: int = self._config.max_replicas
        return max(least, min(most, wanted))

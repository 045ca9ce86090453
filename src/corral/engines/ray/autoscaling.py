"""LLM-aware replica autoscaling as a pure function, and its Ray Serve policy adapter."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

TOKENS_IN_FLIGHT = "corral_tokens_in_flight"
"""The custom metric each Corral replica reports: prompt plus requested tokens still open."""


@dataclass(frozen=True)
class ScalingTargets:
    """What one replica should carry, and the replica bounds."""

    min_replicas: int
    max_replicas: int
    target_ongoing_requests: float
    """Requests (running and queued) one replica should carry."""
    target_tokens_in_flight: float | None = None
    """Prompt plus requested output tokens one replica should carry; None: requests only."""


@dataclass(frozen=True)
class LoadSnapshot:
    """What the deployment carries now."""

    replicas: int
    ongoing_requests: float
    """Running plus queued requests over all replicas."""
    tokens_in_flight: float | None = None
    """Sum of the replicas' tokens in flight; None when they did not report it."""


@dataclass(frozen=True)
class ScalingDecision:
    """How many replicas, and which signal decided it."""

    replicas: int
    reason: str


def desired_replicas(load: LoadSnapshot, targets: ScalingTargets) -> ScalingDecision:
    """Replicas for ``load``: the larger of the request and token needs, within the bounds.

    Request counts treat a 10-token and a 4,000-token request alike; tokens in flight
    (prompt plus requested output) track the work an LLM replica actually holds. Zero
    replicas with nothing ongoing stays at zero (scale to zero); any request wakes one.
    """
    by_requests = math.ceil(load.ongoing_requests / targets.target_ongoing_requests - 1e-9)
    want, reason = by_requests, f"{load.ongoing_requests:g} requests"
    if targets.target_tokens_in_flight and load.tokens_in_flight is not None:
        by_tokens = math.ceil(load.tokens_in_flight / targets.target_tokens_in_flight - 1e-9)
        if by_tokens > want:
            want, reason = by_tokens, f"{load.tokens_in_flight:g} tokens in flight"
    if want > targets.max_replicas:
        return ScalingDecision(targets.max_replicas, f"{reason}; capped at max")
    if want < targets.min_replicas:
        return ScalingDecision(targets.min_replicas, f"{reason}; held at min")
    return ScalingDecision(want, reason)


def snapshot_of(context: Any) -> LoadSnapshot:
    """A LoadSnapshot from a Ray Serve ``AutoscalingContext`` (read by attribute, no import)."""
    metrics: Mapping[str, Mapping[Any, float]] = context.aggregated_metrics or {}
    per_replica = metrics.get(TOKENS_IN_FLIGHT)
    return LoadSnapshot(
        replicas=int(context.current_num_replicas),
        ongoing_requests=float(context.total_num_requests),
        tokens_in_flight=float(sum(per_replica.values())) if per_replica else None,
    )


class LLMAwarePolicy:
    """A Ray Serve custom autoscaling policy (``policy_function`` naming this class).

    Ray instantiates it once with ``policy_kwargs`` and calls it every control-loop tick;
    Ray itself then applies the upscale/downscale delays and the capacity-adjusted bounds.
    """

    def __init__(
        self, *, target_ongoing_requests: float, target_tokens_in_flight: float | None = None
    ) -> None:
        self._requests = target_ongoing_requests
        self._tokens = target_tokens_in_flight

    def __call__(self, context: Any) -> tuple[int, dict[str, Any]]:
        targets = ScalingTargets(
            min_replicas=int(context.capacity_adjusted_min_replicas),
            max_replicas=int(context.capacity_adjusted_max_replicas),
            target_ongoing_requests=self._requests,
            target_tokens_in_flight=self._tokens,
        )
        decision = desired_replicas(snapshot_of(context), targets)
        state = dict(context.policy_state or {})
        state["corral_reason"] = decision.reason
        return decision.replicas, state


POLICY_PATH = f"{__name__}:LLMAwarePolicy"
"""Import path Ray Serve resolves ``policy_function`` from."""


DEFAULT_OUTPUT_TOKENS = 256
"""Output tokens assumed for a request that sets no max_tokens."""


def tokens_requested(body: Mapping[str, Any]) -> int:
    """A request's token weight: prompt (about four characters a token) plus requested output."""
    chars = 0
    for message in body.get("messages") or []:
        content = message.get("content") if isinstance(message, Mapping) else None
        if isinstance(content, str):
            chars += len(content)
    prompt = body.get("prompt")
    if isinstance(prompt, str):
        chars += len(prompt)
    limit = body.get("max_completion_tokens") or body.get("max_tokens")
    output = limit if isinstance(limit, int) and limit > 0 else DEFAULT_OUTPUT_TOKENS
    n = body.get("n")
    choices = n if isinstance(n, int) and n > 0 else 1
    return math.ceil(chars / 4) + output * choices

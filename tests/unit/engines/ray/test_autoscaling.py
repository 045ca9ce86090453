"""The LLM-aware autoscaling policy as a pure function, and its Ray adapter on a plain context."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from corral.engines.ray.autoscaling import (
    DEFAULT_OUTPUT_TOKENS,
    TOKENS_IN_FLIGHT,
    LLMAwarePolicy,
    LoadSnapshot,
    ScalingTargets,
    desired_replicas,
    tokens_requested,
)

TARGETS = ScalingTargets(
    min_replicas=0, max_replicas=8, target_ongoing_requests=4, target_tokens_in_flight=1000
)


@pytest.mark.parametrize(
    ("load", "replicas", "reason"),
    [
        (LoadSnapshot(replicas=0, ongoing_requests=0), 0, "0 requests"),
        (LoadSnapshot(replicas=0, ongoing_requests=1), 1, "1 requests"),
        (LoadSnapshot(replicas=2, ongoing_requests=8, tokens_in_flight=500), 2, "8 requests"),
        (LoadSnapshot(replicas=2, ongoing_requests=9, tokens_in_flight=500), 3, "9 requests"),
        # Four long requests: few by count, but 3,200 tokens need four replicas.
        (LoadSnapshot(replicas=1, ongoing_requests=4, tokens_in_flight=3200), 4, "3200 tokens"),
        (LoadSnapshot(replicas=8, ongoing_requests=400), 8, "capped at max"),
    ],
)
def test_replicas_follow_the_larger_need_within_bounds(
    load: LoadSnapshot, replicas: int, reason: str
) -> None:
    decision = desired_replicas(load, TARGETS)
    assert decision.replicas == replicas
    assert reason in decision.reason


def test_minimum_holds_when_idle_and_tokens_are_ignored_without_a_target() -> None:
    targets = ScalingTargets(min_replicas=2, max_replicas=4, target_ongoing_requests=4)
    idle = desired_replicas(LoadSnapshot(replicas=3, ongoing_requests=0), targets)
    assert (idle.replicas, idle.reason) == (2, "0 requests; held at min")
    heavy = LoadSnapshot(replicas=2, ongoing_requests=4, tokens_in_flight=1e6)
    assert desired_replicas(heavy, targets).replicas == 2


@dataclass
class Context:
    """The attributes of Ray Serve's AutoscalingContext the policy reads."""

    current_num_replicas: int
    total_num_requests: float
    aggregated_metrics: dict[str, dict[Any, float]] | None
    capacity_adjusted_min_replicas: int = 0
    capacity_adjusted_max_replicas: int = 5
    policy_state: dict[str, Any] = field(default_factory=dict)


def test_ray_policy_sums_the_replicas_token_metric() -> None:
    policy = LLMAwarePolicy(target_ongoing_requests=8, target_tokens_in_flight=1000)
    context = Context(2, 3, {TOKENS_IN_FLIGHT: {"r1": 1500.0, "r2": 1200.0}})
    replicas, state = policy(context)
    assert replicas == 3
    assert state["corral_reason"] == "2700 tokens in flight"


def test_ray_policy_falls_back_to_requests_without_metrics_and_keeps_state() -> None:
    policy = LLMAwarePolicy(target_ongoing_requests=2, target_tokens_in_flight=1000)
    context = Context(1, 7, None, policy_state={"ray-internal": 1})
    replicas, state = policy(context)
    assert replicas == 4
    assert state["ray-internal"] == 1


def test_tokens_requested_counts_prompt_output_and_choices() -> None:
    chat = {"messages": [{"role": "user", "content": "x" * 400}], "max_tokens": 100, "n": 2}
    assert tokens_requested(chat) == 100 + 200
    assert tokens_requested({"prompt": "abcd"}) == 1 + DEFAULT_OUTPUT_TOKENS
    assert tokens_requested({"messages": "bad", "max_completion_tokens": 7}) == 7

"""The Kubernetes HorizontalPodAutoscaler's algorithm, for the plain vLLM Deployment runtime.

Kubernetes ships it in Go only, so it is written down here from the documentation
(kubernetes.io/docs/tasks/run-application/horizontal-pod-autoscale, "Algorithm details" and
"Configurable scaling behavior"), with the behaviour ``corral deploy`` renders
(``corral.control.render.autoscaling.render_hpa``).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

from corral.control.render.autoscaling import SCALE_DOWN_PODS_PER_MINUTE, render_hpa
from corral.control.spec import DeploymentSpec
from corral.errors import ConfigError
from corral.simulation.autoscalers import LoadSample

HPA_SYNC_PERIOD_S = 15.0
"""kube-controller-manager ``--horizontal-pod-autoscaler-sync-period`` default."""
HPA_TOLERANCE = 0.1
"""``--horizontal-pod-autoscaler-tolerance`` default: no change within ±10% of the target."""
SCALE_UP_PERCENT = 100
SCALE_UP_PODS = 4
SCALE_UP_PERIOD_S = 15.0
"""Default scale-up policies: the larger of +100% or +4 pods per 15 s."""
METRICS_SCRAPE_S = 30.0
"""Prometheus scrape interval of the pods' metrics (kube-prometheus-stack's default)."""


@dataclass(frozen=True, slots=True)
class HpaBehaviour:
    """The rendered HPA's fields the algorithm reads."""

    min_replicas: int
    max_replicas: int
    target_per_pod: float
    up_window_s: float
    down_window_s: float
    down_pods: int
    down_period_s: float


def behaviour_of(spec: DeploymentSpec) -> HpaBehaviour:
    """The behaviour of the HPA ``corral deploy`` renders for ``spec``."""
    rendered = render_hpa(spec)
    if not rendered:
        raise ConfigError(
            "the spec renders no HorizontalPodAutoscaler: use engine.runtime deployment with "
            "replicas.max above replicas.min"
        )
    hpa = rendered[0]["spec"]
    behaviour = hpa["behavior"]
    down_policy = behaviour["scaleDown"]["policies"][0]
    target = hpa["metrics"][0]["pods"]["target"]["averageValue"]
    return HpaBehaviour(
        min_replicas=hpa["minReplicas"],
        max_replicas=hpa["maxReplicas"],
        target_per_pod=float(target),
        up_window_s=float(behaviour["scaleUp"]["stabilizationWindowSeconds"]),
        down_window_s=float(behaviour["scaleDown"]["stabilizationWindowSeconds"]),
        down_pods=int(down_policy.get("value", SCALE_DOWN_PODS_PER_MINUTE)),
        down_period_s=float(down_policy["periodSeconds"]),
    )


class HorizontalPodAutoscaler:
    """Replica recommendations from the pods' average metric, stabilised and rate-limited."""

    name = "hpa"
    interval_s = HPA_SYNC_PERIOD_S
    sample_interval_s = METRICS_SCRAPE_S

    def __init__(self, behaviour: HpaBehaviour) -> None:
        self._b = behaviour
        self._last: LoadSample | None = None
        self._recommendations: deque[tuple[float, int]] = deque()
        self._changes: deque[tuple[float, int]] = deque()

    def observe(self, sample: LoadSample) -> None:
        self._last = sample

    def decide(self, now: float, running: int, target: int) -> int:
        raw = self._raw(target)
        self._recommendations.append((now, raw))
        keep = max(self._b.up_window_s, self._b.down_window_s)
        while self._recommendations and self._recommendations[0][0] < now - keep:
            self._recommendations.popleft()
        up = min(r for t, r in self._recommendations if t >= now - self._b.up_window_s)
        down = max(r for t, r in self._recommendations if t >= now - self._b.down_window_s)
        stabilised = target
        if up > target:
            stabilised = up
        elif down < target:
            stabilised = down
        limited = self._rate_limited(now, target, stabilised)
        wanted = max(self._b.min_replicas, min(self._b.max_replicas, limited))
        if wanted != target:
            self._changes.append((now, wanted - target))
        return wanted

    def _raw(self, target: int) -> int:
        """The metric's recommendation: missing pods count as 0 up, as on-target down."""
        sample = self._last
        if sample is None or sample.ready_replicas == 0:
            return target
        per_pod = self._b.target_per_pod
        used = sample.ongoing_at_replicas
        ratio = used / (per_pod * sample.ready_replicas)
        if abs(ratio - 1.0) <= HPA_TOLERANCE:
            return target
        missing = max(0, target - sample.ready_replicas)
        if ratio > 1.0:
            adjusted = used / (per_pod * (sample.ready_replicas + missing))
        else:
            adjusted = (used + missing * per_pod) / (per_pod * (sample.ready_replicas + missing))
        if abs(adjusted - 1.0) <= HPA_TOLERANCE or (adjusted > 1.0) != (ratio > 1.0):
            return target
        return math.ceil(adjusted * (sample.ready_replicas + missing) - 1e-9)

    def _rate_limited(self, now: float, target: int, wanted: int) -> int:
        if wanted > target:
            added = sum(d for t, d in self._changes if d > 0 and t > now - SCALE_UP_PERIOD_S)
            base = target - added
            most = max(base * (100 + SCALE_UP_PERCENT) // 100, base + SCALE_UP_PODS)
            return min(wanted, max(target, most))
        if wanted < target:
            removed = -sum(d for t, d in self._changes if d < 0 and t > now - self._b.down_period_s)
            return max(wanted, target - max(0, self._b.down_pods - removed))
        return wanted

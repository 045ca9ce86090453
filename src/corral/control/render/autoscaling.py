"""The HorizontalPodAutoscaler of the plain vLLM Deployment: requests in flight per pod."""

from __future__ import annotations

import math
from typing import Any

from corral.control.render import common
from corral.control.spec import DeploymentSpec
from corral.kube.port import Manifest

HPA_METRIC = "vllm_num_requests_ongoing"
"""The Pods metric the HPA averages over the Deployment's pods, read from the custom metrics API.

vLLM exports ``vllm:num_requests_running`` and ``vllm:num_requests_waiting``; their sum per pod is
what Ray Serve calls *ongoing requests*, so ``replicas.target_ongoing_requests`` means the same for
both runtimes. Running requests alone would stop growing at ``max_num_seqs`` and never trigger a
scale-up past it. prometheus-adapter serves the sum under this name with the rule in
``deploy/prometheus/adapter-values.yaml``; without that adapter the HPA reports
``FailedGetPodsMetric`` and keeps the current replica count."""

SCALE_DOWN_PODS_PER_MINUTE = 1
"""Remove at most one vLLM pod a minute: each one drains its in-flight streams first."""


def wants_hpa(spec: DeploymentSpec) -> bool:
    """An HPA only when the Deployment runtime has room to scale (``min < max``)."""
    return spec.engine.runtime == "deployment" and spec.replicas.max > spec.replicas.min


def render_hpa(spec: DeploymentSpec) -> list[Manifest]:
    """The autoscaler for ``spec``'s Deployment, or nothing when its size is fixed."""
    if not wants_hpa(spec):
        return []
    replicas = spec.replicas
    return [
        {
            "apiVersion": "autoscaling/v2",
            "kind": "HorizontalPodAutoscaler",
            "metadata": common.metadata(spec, spec.name),
            "spec": {
                "scaleTargetRef": {
                    "apiVersion": "apps/v1",
                    "kind": "Deployment",
                    "name": spec.name,
                },
                "minReplicas": replicas.min,
                "maxReplicas": replicas.max,
                "metrics": [_ongoing_requests(replicas.target_ongoing_requests)],
                "behavior": {
                    "scaleUp": {"stabilizationWindowSeconds": _window(replicas.upscale_delay_s)},
                    "scaleDown": {
                        "stabilizationWindowSeconds": _window(replicas.downscale_delay_s),
                        "policies": [
                            {
                                "type": "Pods",
                                "value": SCALE_DOWN_PODS_PER_MINUTE,
                                "periodSeconds": 60,
                            }
                        ],
                    },
                },
            },
        }
    ]


def _ongoing_requests(target: int) -> dict[str, Any]:
    return {
        "type": "Pods",
        "pods": {
            "metric": {"name": HPA_METRIC},
            "target": {"type": "AverageValue", "averageValue": str(target)},
        },
    }


def _window(seconds: float) -> int:
    return math.ceil(seconds)

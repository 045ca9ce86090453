"""The Container Insights option (issue 18): the CloudWatch Observability add-on's values turn on
enhanced Container Insights with NVIDIA and Neuron (accelerated compute) metrics."""

from __future__ import annotations

import json
from pathlib import Path

ROOT = Path(__file__).parents[3]


def test_cloudwatch_observability_values_enable_gpu_and_neuron_metrics() -> None:
    values = json.loads((ROOT / "deploy" / "eks" / "cloudwatch-observability.json").read_text())
    kubernetes = values["agent"]["config"]["logs"]["metrics_collected"]["kubernetes"]
    # Amazon CloudWatch Observability add-on configuration (CloudWatch user guide, "Install the
    # CloudWatch agent with the Amazon CloudWatch Observability EKS add-on"): enhanced
    # observability, and accelerated_compute_metrics for the NVIDIA GPU and Neuron collectors.
    assert kubernetes == {"enhanced_container_insights": True, "accelerated_compute_metrics": True}
    assert (ROOT / "docs" / "eks.md").read_text().count("cloudwatch-observability.json") >= 1

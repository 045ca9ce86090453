"""Prometheus-operator monitors: a PodMonitor for Ray pods, a ServiceMonitor for vLLM."""

from __future__ import annotations

from corral.control.render import common
from corral.control.spec import DeploymentSpec
from corral.kube.port import Manifest


def render_monitors(spec: DeploymentSpec) -> list[Manifest]:
    """The monitor for the spec's runtime, in the model namespace, labelled for the Prometheus."""
    if not spec.monitoring.enabled:
        return []
    meta = common.metadata(spec, spec.name)
    meta["labels"] = {**meta["labels"], "release": spec.monitoring.release_label}
    namespaces = {"matchNames": [spec.namespace]}
    if spec.engine.runtime == "rayservice":
        return [
            {
                "apiVersion": "monitoring.coreos.com/v1",
                "kind": "PodMonitor",
                "metadata": meta,
                "spec": {
                    "jobLabel": common.DEPLOYMENT_LABEL,
                    "namespaceSelector": namespaces,
                    "selector": {"matchLabels": {common.DEPLOYMENT_LABEL: spec.name}},
                    "podMetricsEndpoints": [{"port": "metrics", "interval": "15s"}],
                },
            }
        ]
    return [
        {
            "apiVersion": "monitoring.coreos.com/v1",
            "kind": "ServiceMonitor",
            "metadata": meta,
            "spec": {
                "jobLabel": common.DEPLOYMENT_LABEL,
                "namespaceSelector": namespaces,
                "selector": {"matchLabels": common.owned_labels(spec)},
                "endpoints": [{"port": "http", "path": "/metrics", "interval": "15s"}],
            },
        }
    ]

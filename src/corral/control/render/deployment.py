"""The plain vLLM Deployment variant, for clusters without KubeRay."""

from __future__ import annotations

from typing import Any

from corral.control.planner.instances import PriceTable
from corral.control.render import common
from corral.control.render.autoscaling import wants_hpa
from corral.control.render.rayservice import engine_kwargs
from corral.control.spec import DeploymentSpec
from corral.kube.port import Manifest


def vllm_args(spec: DeploymentSpec) -> list[str]:
    """``vllm serve`` command-line arguments for the spec."""
    args = [
        "--model",
        common.model_source(spec),
        "--served-model-name",
        spec.served_name,
        "--host",
        "0.0.0.0",  # noqa: S104 - the pod's Service must reach it
        "--port",
        str(common.SERVE_PORT),
    ]
    for key, value in engine_kwargs(spec).items():
        flag = "--" + key.replace("_", "-")
        if isinstance(value, bool):
            args += [flag] if value else []
        else:
            args += [flag, str(value)]
    return args


def _probe(path: str, period: int, failures: int) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": "http"},
        "periodSeconds": period,
        "failureThreshold": failures,
    }


def render_deployment(spec: DeploymentSpec, table: PriceTable) -> Manifest:
    """A Deployment of ``vllm serve`` pods, one replica per pod (sized by its HPA if it has one)."""
    image = spec.engine.image or common.VLLM_IMAGES[common.device_of(spec).vendor]
    vols, mounts = common.volumes(spec)
    labels = common.pod_labels(spec, "server")
    container = {
        "name": "vllm",
        "image": image,
        "args": vllm_args(spec),
        "ports": [{"name": "http", "containerPort": common.SERVE_PORT, "protocol": "TCP"}],
        "env": common.env(spec),
        "resources": common.replica_resources(spec, table),
        "volumeMounts": mounts,
        # Loading weights can take many minutes; liveness starts only once startup succeeds.
        "startupProbe": _probe("/health", 10, 180),
        "readinessProbe": _probe("/health", 5, 3),
        "livenessProbe": _probe("/health", 10, 6),
    }
    # With an HPA the replica count is the HPA's: setting it here would reset it on every apply.
    replicas = {} if wants_hpa(spec) else {"replicas": spec.replicas.min}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": common.metadata(spec, spec.name),
        "spec": {
            **replicas,
            "selector": {
                "matchLabels": {common.DEPLOYMENT_LABEL: spec.name, common.ROLE_LABEL: "server"}
            },
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0}},
            "template": {
                "metadata": {"labels": labels, "annotations": dict(common.SERVING_POD_ANNOTATIONS)},
                "spec": {
                    "serviceAccountName": spec.name,
                    **common.placement(spec),
                    "terminationGracePeriodSeconds": 60,
                    **common.init_containers(spec),
                    "containers": [container],
                    "volumes": vols,
                },
            },
        },
    }

"""A LeaderWorkerSet for a plain-vLLM replica that spans nodes (clusters without KubeRay).

One group per replica: the leader starts a Ray head, waits for the group's workers to join, and
runs ``vllm serve`` with Ray as vLLM's distributed executor; each worker joins the leader's Ray
cluster. This is vLLM's documented LWS layout (vLLM docs, 'Deployment: LWS';
examples/online_serving/multi-node-serving.sh, shipped in the vllm/vllm-openai image), with the
EFA environment and one zone from ``multi_node``.
"""

from __future__ import annotations

import shlex
from typing import Any

from corral.control.planner.instances import PriceTable
from corral.control.render import common, multi_node
from corral.control.render.deployment import vllm_args
from corral.control.spec import DeploymentSpec
from corral.kube.port import Manifest

LWS_API = "leaderworkerset.x-k8s.io/v1"
MULTI_NODE_SCRIPT = "/vllm-workspace/examples/online_serving/multi-node-serving.sh"
"""vLLM's helper: ``leader --ray_cluster_size=N`` starts the Ray head and waits for N nodes;
``worker --ray_address=HOST`` joins it (vllm-project/vllm examples/online_serving)."""


def leader_command(spec: DeploymentSpec) -> list[str]:
    """The leader's shell command: Ray head for the group, then the vLLM server on it."""
    args = [*vllm_args(spec), "--distributed-executor-backend", "ray"]
    # The image's entrypoint (vllm/vllm-openai Dockerfile), which the command replaces.
    serve = shlex.join(["python3", "-m", "vllm.entrypoints.openai.api_server", *args])
    start = f"bash {MULTI_NODE_SCRIPT} leader --ray_cluster_size=$(LWS_GROUP_SIZE)"
    return ["/bin/sh", "-c", f"{start} && exec {serve}"]


def worker_command() -> list[str]:
    return [
        "/bin/sh",
        "-c",
        f"bash {MULTI_NODE_SCRIPT} worker --ray_address=$(LWS_LEADER_ADDRESS)",
    ]


def _container(
    spec: DeploymentSpec, table: PriceTable, command: list[str], mounts: list[dict[str, Any]]
) -> dict[str, Any]:
    image = spec.engine.image or common.VLLM_IMAGES[common.device_of(spec).vendor]
    return {
        "name": "vllm",
        "image": image,
        "command": command,
        "env": common.env(spec),
        "resources": common.replica_resources(spec, table),
        "volumeMounts": mounts,
        **multi_node.multi_node_container(spec),
    }


def _template(spec: DeploymentSpec, role: str, container: dict[str, Any]) -> dict[str, Any]:
    vols, _ = common.volumes(spec)
    return {
        "metadata": {
            "labels": common.pod_labels(spec, role),
            "annotations": dict(common.SERVING_POD_ANNOTATIONS),
        },
        "spec": {
            "serviceAccountName": spec.name,
            **common.placement(spec),
            **multi_node.multi_node_pod(spec, {common.DEPLOYMENT_LABEL: spec.name}),
            "terminationGracePeriodSeconds": 60,
            **common.init_containers(spec),
            "containers": [container],
            "volumes": vols,
        },
    }


def render_leader_worker_set(spec: DeploymentSpec, table: PriceTable) -> Manifest:
    """``replicas.min`` groups of ``accelerator.nodes`` pods; the leader serves the API."""
    _, mounts = common.volumes(spec)
    leader = _container(spec, table, leader_command(spec), mounts)
    leader["ports"] = [{"name": "http", "containerPort": common.SERVE_PORT, "protocol": "TCP"}]
    # The leader answers only once every worker joined and the weights loaded.
    leader["readinessProbe"] = {
        "httpGet": {"path": "/health", "port": "http"},
        "periodSeconds": 10,
        "failureThreshold": 3,
    }
    worker = _container(spec, table, worker_command(), mounts)
    return {
        "apiVersion": LWS_API,
        "kind": "LeaderWorkerSet",
        "metadata": common.metadata(spec, spec.name),
        "spec": {
            "replicas": spec.replicas.min,
            # Workers start once the leader pod exists; the leader waits for them to join.
            "startupPolicy": "LeaderCreated",
            "leaderWorkerTemplate": {
                "size": spec.accelerator.nodes,
                # A pipeline stage lost is the replica lost: restart the whole group together.
                "restartPolicy": "RecreateGroupOnPodRestart",
                "leaderTemplate": _template(spec, "server", leader),
                "workerTemplate": _template(spec, "worker", worker),
            },
        },
    }

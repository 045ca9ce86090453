"""Namespace, ServiceAccount, weights volumes, Service, PodDisruptionBudget and NetworkPolicy."""

from __future__ import annotations

from typing import Any

from corral.control.render import common
from corral.control.spec import DeploymentSpec
from corral.kube.port import Manifest

MOUNTPOINT_DRIVER = "s3.csi.aws.com"


def render_namespace(spec: DeploymentSpec) -> Manifest:
    """The namespace, shared by deployments: no deployment label, so undeploy keeps it."""
    labels = {common.MANAGED_BY: "corral"}
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": spec.namespace, "labels": labels},
    }


IRSA_ANNOTATION = "eks.amazonaws.com/role-arn"
"""IAM roles for service accounts: the pod identity webhook gives the pods this role."""


def render_service_account(spec: DeploymentSpec) -> Manifest:
    """The pods' identity; with ``model.iam_role_arn`` annotated for IRSA (EKS Pod Identity
    instead binds the ServiceAccount by name, outside the manifests: docs/eks.md)."""
    meta = common.metadata(spec, spec.name)
    if spec.model.iam_role_arn:
        meta["annotations"] = {IRSA_ANNOTATION: spec.model.iam_role_arn}
    return {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta}


def render_weights_volume(spec: DeploymentSpec) -> list[Manifest]:
    """A static Mountpoint for S3 PersistentVolume and its claim, when the spec mounts S3."""
    if spec.model.kind != "s3" or spec.model.s3_mode != "mountpoint":
        return []
    claim = f"{spec.name}-weights"
    pv_name = f"corral-{spec.namespace}-{claim}"
    bucket, _, prefix = spec.model.source.removeprefix("s3://").partition("/")
    options = ["allow-other", "read-only"]
    if prefix:
        options.append(f"prefix {prefix.rstrip('/')}/")
    if spec.model.s3_region:
        options.append(f"region {spec.model.s3_region}")
    size = {"storage": "1Ti"}  # required by the API, ignored by the Mountpoint driver
    pv = {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": common.metadata(spec, pv_name, namespaced=False),
        "spec": {
            "capacity": size,
            "accessModes": ["ReadOnlyMany"],
            "persistentVolumeReclaimPolicy": "Retain",
            "storageClassName": "",
            "mountOptions": options,
            "claimRef": {"namespace": spec.namespace, "name": claim},
            "csi": {
                "driver": MOUNTPOINT_DRIVER,
                "volumeHandle": pv_name,
                "volumeAttributes": {"bucketName": bucket},
            },
        },
    }
    pvc = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": common.metadata(spec, claim),
        "spec": {
            "accessModes": ["ReadOnlyMany"],
            "storageClassName": "",
            "volumeName": pv_name,
            "resources": {"requests": size},
        },
    }
    return [pv, pvc]


def serving_selector(spec: DeploymentSpec) -> dict[str, str]:
    """Pods that answer requests: the vLLM pods, or Ray pods KubeRay marks as serving."""
    if spec.engine.runtime == "deployment":
        return {common.DEPLOYMENT_LABEL: spec.name, common.ROLE_LABEL: "server"}
    return {common.DEPLOYMENT_LABEL: spec.name, "ray.io/serve": "true"}


def render_service(spec: DeploymentSpec) -> Manifest:
    """The stable in-cluster endpoint the gateway routes the model to."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            **common.metadata(spec, spec.name),
            "annotations": common.service_annotations(spec),
        },
        "spec": {
            "type": "ClusterIP",
            "selector": serving_selector(spec),
            "ports": [
                {
                    "name": "http",
                    "port": common.SERVE_PORT,
                    "targetPort": common.SERVE_PORT,
                    "protocol": "TCP",
                }
            ],
        },
    }


def disruption_budget(spec: DeploymentSpec) -> dict[str, int]:
    """A budget that never lets a drain evict the last ready replica pod.

    The eviction API allows an eviction while ``currentHealthy - 1 >= desiredHealthy``
    (kubernetes pkg/controller/disruption/disruption.go, ``updatePdbStatus``; pkg/registry/core/
    pod/storage/eviction.go). ``maxUnavailable: 1`` over one pod gives desiredHealthy 0, so the
    only replica can go; ``minAvailable: 1`` keeps it. With at least two replicas always wanted,
    ``maxUnavailable: 1`` keeps one pod up and still lets drains proceed one at a time.
    Ray worker pods belong to a RayCluster, which has no ``/scale`` subresource
    (ray.io_rayclusters.yaml ``subresources: {status: {}}``); for such pods Kubernetes honours
    only an integer ``minAvailable`` (docs: "Specifying a Disruption Budget", arbitrary workloads).

    A replica spanning nodes is several pods, each of which it cannot lose: the budget counts
    pods, so keeping the last replica means keeping all ``accelerator.nodes`` of its pods.
    """
    if spec.engine.runtime == "deployment" and spec.replicas.min >= 2:
        return {"maxUnavailable": 1}
    return {"minAvailable": spec.accelerator.nodes}


def render_pdb(spec: DeploymentSpec) -> Manifest:
    """Voluntary disruption (drains) takes one replica pod at a time and never the last one."""
    role = "server" if spec.engine.runtime == "deployment" else "worker"
    selector = {common.DEPLOYMENT_LABEL: spec.name, common.ROLE_LABEL: role}
    if spec.engine.runtime == "deployment" and spec.accelerator.nodes > 1:
        selector = {common.DEPLOYMENT_LABEL: spec.name}  # a group's leader and its workers
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": common.metadata(spec, spec.name),
        "spec": {
            **disruption_budget(spec),
            "selector": {"matchLabels": selector},
        },
    }


def _from_namespace(namespace: str, pods: dict[str, str] | None = None) -> dict[str, Any]:
    peer: dict[str, Any] = {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}}
    }
    if pods:
        peer["podSelector"] = {"matchLabels": dict(pods)}
    return peer


def _tcp(port: int) -> dict[str, Any]:
    return {"port": port, "protocol": "TCP"}


def render_network_policy(spec: DeploymentSpec) -> Manifest:
    """Only the gateway reaches the model port; Ray pods talk to each other; Prometheus scrapes."""
    own = {common.DEPLOYMENT_LABEL: spec.name}
    gateway = spec.gateway
    rules: list[dict[str, Any]] = [
        {
            "from": [_from_namespace(gateway.namespace, gateway.pod_labels)],
            "ports": [_tcp(common.SERVE_PORT)],
        }
    ]
    metrics_port = common.SERVE_PORT
    if spec.engine.runtime == "rayservice" or spec.accelerator.nodes > 1:
        # Ray (GCS, object transfer) and NCCL's TCP bootstrap between the deployment's pods.
        # EFA traffic bypasses the IP stack, so the security group governs it, not this policy.
        rules.append({"from": [{"podSelector": {"matchLabels": own}}]})
    if spec.engine.runtime == "rayservice":
        metrics_port = common.METRICS_PORT
        operator = {
            "namespaceSelector": {},
            "podSelector": {"matchLabels": {"app.kubernetes.io/name": "kuberay-operator"}},
        }
        rules.append({"from": [operator], "ports": [_tcp(8265), _tcp(common.SERVE_PORT)]})
    if spec.monitoring.enabled:
        rules.append(
            {"from": [_from_namespace(spec.monitoring.namespace)], "ports": [_tcp(metrics_port)]}
        )
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": common.metadata(spec, spec.name),
        "spec": {"podSelector": {"matchLabels": own}, "policyTypes": ["Ingress"], "ingress": rules},
    }

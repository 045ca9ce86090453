"""Opening the real Kubernetes client, which lives in the optional ``k8s`` extra."""

from __future__ import annotations

from typing import TYPE_CHECKING

from corral.errors import ConfigError

if TYPE_CHECKING:
    from corral.kube.lightkube_client import LightkubeClient


def lightkube_client(
    context: str | None, *, purpose: str, in_cluster: bool = False
) -> LightkubeClient:
    """A client for kubeconfig ``context`` (None: the current one, or with ``in_cluster`` the
    pod's service account when there is one). ConfigError saying how to install the extra
    ``purpose`` (e.g. "discovery.kubernetes") needs."""
    try:
        from corral.kube.lightkube_client import LightkubeClient
    except ImportError as exc:
        raise ConfigError(f"{purpose} needs the k8s extra: pip install 'corral[k8s]'") from exc
    if context is None and in_cluster:
        return LightkubeClient.in_cluster()  # service account in a pod, else the kubeconfig
    return LightkubeClient.from_kubeconfig(context)

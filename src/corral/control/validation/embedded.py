"""Pod templates embedded in CRD objects whose schema leaves them open, checked as Kubernetes'
own ``PodTemplate`` kind (kubernetes-validate), so a LeaderWorkerSet's pods get the same strict
check as a Deployment's."""

from __future__ import annotations

from typing import Any

from corral.control.validation.builtin import KUBERNETES_VERSION, validate_builtin
from corral.kube.port import Manifest


def embedded_templates(obj: Manifest) -> list[tuple[str, dict[str, Any]]]:
    """(path, template) of every pod template the object's schema does not check itself."""
    if obj.get("kind") != "LeaderWorkerSet":
        return []
    lws = obj.get("spec", {}).get("leaderWorkerTemplate", {})
    base = "spec.leaderWorkerTemplate"
    return [(f"{base}.{k}", lws[k]) for k in ("leaderTemplate", "workerTemplate") if k in lws]


def embedded_problems(obj: Manifest, version: str = KUBERNETES_VERSION) -> list[str]:
    """Problems with the object's embedded pod templates, each prefixed with its path."""
    out = []
    for path, template in embedded_templates(obj):
        wrapper = {
            "apiVersion": "v1",
            "kind": "PodTemplate",
            "metadata": {"name": "embedded"},
            "template": template,
        }
        out += [
            f"{path}: {p.removeprefix('template.')}" for p in validate_builtin(wrapper, version)
        ]
    return out

"""Built-in Kubernetes kinds checked offline with kubernetes-validate, strictly."""

from __future__ import annotations

import kubernetes_validate

from corral.kube.port import Manifest

KUBERNETES_VERSION = "1.31"
"""The API version the schemas come from: the oldest EKS standard-support release Corral targets."""


def is_builtin(obj: Manifest, version: str = KUBERNETES_VERSION) -> bool:
    """True when kubernetes-validate has a schema for the object's kind."""
    try:
        kubernetes_validate.validate(obj, version, strict=True)
    except kubernetes_validate.SchemaNotFoundError:
        return False
    except kubernetes_validate.ValidationError:
        return True
    return True


def validate_builtin(obj: Manifest, version: str = KUBERNETES_VERSION) -> list[str]:
    """Problems with a built-in object (kubernetes-validate stops at the first one)."""
    try:
        kubernetes_validate.validate(obj, version, strict=True)
    except kubernetes_validate.ValidationError as exc:
        where = ".".join(str(p) for p in exc.absolute_path) or "(root)"
        return [f"{where}: {exc.message}"]
    return []

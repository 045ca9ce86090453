"""Validate a set of manifests: each against its schema, then all of them against each other."""

from __future__ import annotations

from collections.abc import Iterable

from corral.control.validation.builtin import KUBERNETES_VERSION, validate_builtin
from corral.control.validation.crds import known_group, schema_file_for, validate_custom
from corral.control.validation.references import check_references
from corral.errors import ConfigError
from corral.kube.port import Manifest


def _describe(obj: Manifest) -> str:
    meta = obj.get("metadata") or {}
    where = f"{meta['namespace']}/" if meta.get("namespace") else ""
    return f"{obj.get('kind')}/{where}{meta.get('name')}"


def find_problems(
    objs: list[Manifest], *, external: Iterable[str] = (), version: str = KUBERNETES_VERSION
) -> list[str]:
    """Every problem found, each starting with the object it is about; empty when all is well."""
    problems: list[str] = []
    for obj in objs:
        api_version = str(obj.get("apiVersion", ""))
        if schema_file_for(obj) is not None or known_group(api_version):
            found = validate_custom(obj)
        else:
            found = validate_builtin(obj, version)
        problems += [f"{_describe(obj)}: {p}" for p in found]
    return problems + check_references(objs, external)


def ensure_valid(objs: list[Manifest], *, external: Iterable[str] = ()) -> None:
    """Raise ConfigError listing every problem, so nothing invalid reaches a cluster."""
    problems = find_problems(objs, external=external)
    if problems:
        raise ConfigError("rendered manifests are invalid:\n  " + "\n  ".join(problems))

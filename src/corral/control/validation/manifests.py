"""Validate a set of manifests: each against its schema and CEL rules, then all of them together."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from corral.control.validation.builtin import KUBERNETES_VERSION, validate_builtin
from corral.control.validation.cel import CelOutcome, check_cel
from corral.control.validation.crds import (
    known_group,
    openapi_schema,
    schema_file_for,
    validate_custom,
)
from corral.control.validation.embedded import embedded_problems
from corral.control.validation.references import check_references
from corral.errors import ConfigError
from corral.kube.port import Manifest


@dataclass
class ValidationReport:
    """Every problem found, and what the CEL pass could and could not check."""

    problems: list[str] = field(default_factory=list)
    """Each starts with the object it is about (``Kind/namespace/name: path: message``)."""
    cel: CelOutcome = field(default_factory=CelOutcome)

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        """A short account for the CLI: problem count and CEL coverage."""
        head = "valid" if self.ok else f"{len(self.problems)} problem(s)"
        return f"{head}; {self.cel.summary()}"


def _describe(obj: Manifest) -> str:
    meta = obj.get("metadata") or {}
    where = f"{meta['namespace']}/" if meta.get("namespace") else ""
    return f"{obj.get('kind')}/{where}{meta.get('name')}"


def validate_manifests(
    objs: list[Manifest], *, external: Iterable[str] = (), version: str = KUBERNETES_VERSION
) -> ValidationReport:
    """Check each object against its schema; CRD objects that pass also against their CEL rules
    (the API server evaluates rules on typed, schema-valid objects only); then cross-references.
    """
    report = ValidationReport()
    for obj in objs:
        api_version = str(obj.get("apiVersion", ""))
        if schema_file_for(obj) is not None or known_group(api_version):
            found = validate_custom(obj) + embedded_problems(obj, version)
            schema = openapi_schema(obj)
            if not found and schema is not None:
                outcome = check_cel(obj, schema)
                found = outcome.problems
                report.cel.add(outcome, prefix=_describe(obj))
        else:
            found = validate_builtin(obj, version)
        report.problems += [f"{_describe(obj)}: {p}" for p in found]
    report.problems += check_references(objs, external)
    return report


def find_problems(
    objs: list[Manifest], *, external: Iterable[str] = (), version: str = KUBERNETES_VERSION
) -> list[str]:
    """Every problem found, each starting with the object it is about; empty when all is well."""
    return validate_manifests(objs, external=external, version=version).problems


def ensure_valid(objs: list[Manifest], *, external: Iterable[str] = ()) -> ValidationReport:
    """Raise ConfigError listing every problem, so nothing invalid reaches a cluster; else the
    report (whose ``summary()`` says which CEL rules could not be evaluated)."""
    report = validate_manifests(objs, external=external)
    if report.problems:
        raise ConfigError("rendered manifests are invalid:\n  " + "\n  ".join(report.problems))
    return report

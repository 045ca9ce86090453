"""CEL rules (``x-kubernetes-validations``) checked by walking a CRD schema alongside the object."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from corral.control.validation.cel_rules import CelRule, evaluate, from_schema


@dataclass
class CelOutcome:
    """What the CEL pass did: problems found, and how many rule checks ran or could not."""

    problems: list[str] = field(default_factory=list)
    evaluated: int = 0
    """Rule checks run (one rule on one value)."""
    transition: int = 0
    """Rule checks skipped because they compare with the previous object (``oldSelf``)."""
    not_evaluable: dict[str, str] = field(default_factory=dict)
    """Rules met but not evaluated, by rule text, with the reason."""
    skipped: int = 0
    """Rule checks not run because their rule is not evaluable."""

    def add(self, other: CelOutcome, prefix: str = "") -> None:
        """Fold in another outcome, its problems prefixed (e.g. with the object's name)."""
        self.problems += [f"{prefix}: {p}" if prefix else p for p in other.problems]
        self.evaluated += other.evaluated
        self.transition += other.transition
        self.skipped += other.skipped
        self.not_evaluable.update(other.not_evaluable)

    def summary(self) -> str:
        """One line for reports, e.g. ``CEL: 120 checks run, 6 transition rules skipped, ...``."""
        text = f"CEL: {self.evaluated} rule checks run, {self.transition} transition-rule checks "
        text += f"skipped (no previous object), {self.skipped} not evaluable"
        if self.not_evaluable:
            text += " (" + "; ".join(f"{r!r}: {w}" for r, w in self.not_evaluable.items()) + ")"
        return text


Visit = Callable[[CelRule, Any, str], None]


def check_cel(obj: Mapping[str, Any], schema: Mapping[str, Any]) -> CelOutcome:
    """Every rule in ``schema`` evaluated on the values ``obj`` holds, with ``self`` bound to the
    value at the rule's node. Problems read ``path: message``."""
    outcome = CelOutcome()

    def visit(rule: CelRule, value: Any, path: str) -> None:
        if rule.status == "transition":
            outcome.transition += 1
            return
        result = evaluate(rule, value)
        if not result.evaluated:
            outcome.skipped += 1
            outcome.not_evaluable[rule.rule] = result.detail
            return
        outcome.evaluated += 1
        if not result.holds:
            where = _join(path, rule.field_path.lstrip(".")) if rule.field_path else path
            extra = f" ({result.detail})" if result.detail else ""
            outcome.problems.append(f"{where or '(root)'}: {rule.message}{extra}")

    _walk(schema, obj, "", visit)
    return outcome


def _walk(schema: Mapping[str, Any], value: Any, path: str, visit: Visit) -> None:
    if value is None:
        return
    for raw in schema.get("x-kubernetes-validations", []):
        visit(from_schema(raw), value, path)
    props = schema.get("properties")
    extra = schema.get("additionalProperties")
    if isinstance(value, dict):
        for key, item in value.items():
            if props and key in props:
                _walk(props[key], item, _join(path, key), visit)
            elif not props and isinstance(extra, dict):
                _walk(extra, item, f"{path}[{key}]", visit)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for index, item in enumerate(value):
            _walk(schema["items"], item, f"{path}[{index}]", visit)


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def schema_rules(schema: Mapping[str, Any], path: str = "") -> Iterator[tuple[str, CelRule]]:
    """Every rule in a schema with the path of its node (``[]`` for list items, ``{}`` for map
    values), whether or not any object reaches it: the static count of what is covered."""
    for raw in schema.get("x-kubernetes-validations", []):
        yield path or "(root)", from_schema(raw)
    for key, sub in (schema.get("properties") or {}).items():
        yield from schema_rules(sub, _join(path, key))
    if isinstance(schema.get("items"), dict):
        yield from schema_rules(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), dict):
        yield from schema_rules(schema["additionalProperties"], f"{path}{{}}")


@dataclass
class Coverage:
    """How many of the rules in a set of schemas Corral evaluates, skips, or cannot evaluate."""

    evaluable: int = 0
    via_shims: int = 0
    """Evaluable rules that need a Kubernetes function Corral shims (``find``, ``split``...)."""
    transition: int = 0
    not_evaluable: list[tuple[str, str, str]] = field(default_factory=list)
    """``(where, rule, reason)`` for each rule that is not evaluated."""

    def summary(self) -> str:
        total = self.evaluable + self.transition + len(self.not_evaluable)
        return (
            f"{total} CEL rules: {self.evaluable} evaluable ({self.via_shims} through Corral's "
            f"shims of Kubernetes functions), {self.transition} transition rules "
            f"(skipped), {len(self.not_evaluable)} not evaluable"
        )


def coverage(schemas: Iterable[tuple[str, Mapping[str, Any]]]) -> Coverage:
    """Count the rules of each ``(name, schema)`` by status."""
    out = Coverage()
    for name, schema in schemas:
        for where, rule in schema_rules(schema):
            if rule.status == "evaluable":
                out.evaluable += 1
                out.via_shims += bool(rule.shims)
            elif rule.status == "transition":
                out.transition += 1
            else:
                out.not_evaluable.append((f"{name} {where}", rule.rule, rule.reason))
    return out

"""One ``x-kubernetes-validations`` rule: compiled with cel-python, or marked not evaluable."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any, Literal

import celpy
import lark
from celpy.adapter import json_to_cel
from celpy.celparser import CELParseError
from celpy.evaluation import CELEvalError

from corral.control.validation.cel_functions import KUBERNETES_SHIMS, MACROS, SUPPORTED

Status = Literal["evaluable", "transition", "not-evaluable"]

_ESCAPED_NAME = re.compile(r"^__\w+__$")
_ENV = celpy.Environment()


@dataclass(frozen=True, eq=False)
class CelRule:
    """A rule as the CRD states it, and whether (and how) it can be evaluated here."""

    rule: str
    message: str
    """The rule's ``message``, else the rule text (``messageExpression`` is not evaluated)."""
    field_path: str
    status: Status
    reason: str = ""
    """Why the rule is not evaluated (empty when it is)."""
    program: celpy.Runner | None = None
    shims: frozenset[str] = frozenset()
    """Kubernetes functions the rule needs that Corral supplies (cel-python has none of them)."""


@dataclass(frozen=True)
class RuleResult:
    """The outcome of one rule on one value: it holds, it does not, or it could not be run."""

    holds: bool
    detail: str = ""
    evaluated: bool = True


def from_schema(raw: Mapping[str, Any]) -> CelRule:
    """The compiled form of one entry of a schema node's ``x-kubernetes-validations``."""
    return compile_rule(
        str(raw["rule"]), str(raw.get("message") or ""), str(raw.get("fieldPath") or "")
    )


@cache
def compile_rule(rule: str, message: str = "", field_path: str = "") -> CelRule:
    """Parse ``rule`` and decide whether it is evaluable, a transition rule, or neither."""
    shown = message or rule
    try:
        tree = _ENV.compile(rule)
    except CELParseError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "syntax error"
        reason = f"cel-python cannot parse it ({first})"
        return CelRule(rule, shown, field_path, "not-evaluable", reason)
    names = set(_identifiers(tree))
    if "oldSelf" in names:
        reason = "a transition rule (uses oldSelf), which needs the object's previous version"
        return CelRule(rule, shown, field_path, "transition", reason)
    calls = set(_calls(tree))
    unknown = sorted(calls - SUPPORTED - MACROS)
    if unknown:
        listed = ", ".join(f"{n}()" for n in unknown)
        reason = f"uses {listed}, which cel-python lacks and Corral does not shim"
        return CelRule(rule, shown, field_path, "not-evaluable", reason)
    escaped = sorted(n for n in names if _ESCAPED_NAME.match(n))
    if escaped:
        reason = f"uses Kubernetes property-name escaping ({', '.join(escaped)})"
        return CelRule(rule, shown, field_path, "not-evaluable", reason)
    program = _ENV.program(tree, functions=KUBERNETES_SHIMS)
    shims = frozenset(calls & set(KUBERNETES_SHIMS))
    return CelRule(rule, shown, field_path, "evaluable", program=program, shims=shims)


def evaluate(rule: CelRule, value: Any) -> RuleResult:
    """Run an evaluable rule with ``self`` bound to ``value`` (plain JSON data).

    As in the API server, a rule that errors (a missing field, a bad conversion) fails. A failure
    inside cel-python itself is not the object's fault: it comes back as not evaluated.
    """
    if rule.program is None:
        return RuleResult(holds=True, detail=rule.reason, evaluated=False)
    try:
        result = rule.program.evaluate({"self": json_to_cel(value)})
    except CELEvalError as exc:
        return RuleResult(holds=False, detail=f"error evaluating rule: {_first_arg(exc)}")
    except (TypeError, ValueError, AttributeError, RuntimeError) as exc:
        return RuleResult(True, f"cel-python failed: {type(exc).__name__}: {exc}", evaluated=False)
    if isinstance(result, CELEvalError):
        return RuleResult(holds=False, detail=f"error evaluating rule: {_first_arg(result)}")
    if not isinstance(result, celpy.celtypes.BoolType):
        return RuleResult(holds=False, detail=f"rule gave {type(result).__name__}, not a bool")
    return RuleResult(holds=bool(result))


def _first_arg(exc: CELEvalError) -> str:
    return str(exc.args[0]) if exc.args else type(exc).__name__


def _identifiers(tree: lark.Tree[Any]) -> Iterator[str]:
    for node in tree.iter_subtrees():
        if node.data in ("ident", "member_dot", "dot_ident"):
            yield from (str(t) for t in node.children if isinstance(t, lark.Token))


def _calls(tree: lark.Tree[Any]) -> Iterator[str]:
    for node in tree.iter_subtrees():
        if node.data in ("ident_arg", "member_dot_arg", "dot_ident_arg"):
            yield from (str(t) for t in node.children if isinstance(t, lark.Token))

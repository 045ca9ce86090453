"""What a PromQL query refers to: metric names, label names, and label values matched on."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import promql_parser as pp

# Grafana's built-in interval variables, replaced by a duration so the query parses.
_GRAFANA_INTERVAL = re.compile(r"\$\{?__(?:rate_interval|interval|range)(?:_ms|_s)?\}?")
# Functions whose string arguments name labels: (index of the label it creates, or None;
# the slice of arguments naming labels it reads).
_LABEL_ARGUMENTS: dict[str, tuple[int | None, slice]] = {
    "label_replace": (1, slice(3, 4)),
    "label_join": (1, slice(3, None)),
    "sort_by_label": (None, slice(1, None)),
    "sort_by_label_desc": (None, slice(1, None)),
}


class QueryError(ValueError):
    """A query that does not parse as PromQL."""


@dataclass(frozen=True, slots=True)
class Selector:
    """One series selector: the metric it names and the labels it matches on."""

    metric: str | None
    matchers: tuple[tuple[str, str], ...]  # (label, value) of every matcher but __name__

    @property
    def labels(self) -> frozenset[str]:
        return frozenset(label for label, _ in self.matchers)


@dataclass(frozen=True, slots=True)
class LabelUse:
    """A label named by grouping, vector matching or a label function, and the metrics it
    applies to (those in the expression it groups or matches)."""

    label: str
    scope: frozenset[str]
    clause: str


@dataclass(slots=True)
class References:
    """Everything one query refers to."""

    selectors: list[Selector] = field(default_factory=list)
    label_uses: list[LabelUse] = field(default_factory=list)
    introduced: set[str] = field(default_factory=set)

    @property
    def metrics(self) -> frozenset[str]:
        return frozenset(s.metric for s in self.selectors if s.metric is not None)


def from_grafana(expr: str) -> str:
    """A Grafana panel query as plain PromQL: interval variables become ``5m``."""
    return _GRAFANA_INTERVAL.sub("5m", expr)


def references(query: str) -> References:
    """Parse ``query`` and collect what it refers to; raises QueryError when it does not parse."""
    try:
        expr = pp.parse(query)
    except (ValueError, TypeError) as exc:
        raise QueryError(f"{query!r} is not valid PromQL: {exc}") from exc
    found = References()
    _visit(expr, found)
    return found


def _visit(node: object, found: References) -> frozenset[str]:
    """Record what ``node`` refers to; return the metric names in its subtree."""
    if isinstance(node, pp.MatrixSelector):
        node = node.vector_selector
    scope: frozenset[str] = frozenset()
    if isinstance(node, pp.VectorSelector):
        scope = _selector(node, found)
    elif isinstance(node, pp.ParenExpr | pp.UnaryExpr | pp.SubqueryExpr):
        scope = _visit(node.expr, found)
    elif isinstance(node, pp.AggregateExpr):
        scope = _aggregate(node, found)
    elif isinstance(node, pp.BinaryExpr):
        scope = _binary(node, found)
    elif isinstance(node, pp.Call):
        scope = _call(node, found)
    return scope


def _selector(node: pp.VectorSelector, found: References) -> frozenset[str]:
    metric = node.name
    matchers: list[tuple[str, str]] = []
    groups = [node.matchers.matchers, *node.matchers.or_matchers]
    for group in groups:
        for m in group:
            if m.name == "__name__" and m.op == pp.MatchOp.Equal:
                metric = m.value
            elif m.name != "__name__":
                matchers.append((m.name, m.value))
    found.selectors.append(Selector(metric, tuple(matchers)))
    return frozenset({metric}) if metric is not None else frozenset()


def _aggregate(node: pp.AggregateExpr, found: References) -> frozenset[str]:
    scope = _visit(node.expr, found)
    if node.param is not None:
        _visit(node.param, found)
        if str(node.op) == "count_values" and isinstance(node.param, pp.StringLiteral):
            found.introduced.add(node.param.val)
    if node.modifier is not None:
        clause = "by" if node.modifier.type == pp.AggModifierType.By else "without"
        found.label_uses += [LabelUse(lb, scope, clause) for lb in node.modifier.labels]
    return scope


def _binary(node: pp.BinaryExpr, found: References) -> frozenset[str]:
    scope = _visit(node.lhs, found) | _visit(node.rhs, found)
    modifier = node.modifier
    if modifier is not None:
        if modifier.matching is not None:
            include = modifier.matching.type == pp.LabelModifierType.Include
            clause = "on" if include else "ignoring"
            found.label_uses += [LabelUse(lb, scope, clause) for lb in modifier.matching.labels]
        for lb in modifier.group_labels or ():
            found.label_uses.append(LabelUse(lb, scope, "group"))
    return scope


def _call(node: pp.Call, found: References) -> frozenset[str]:
    scope = frozenset[str]().union(*(_visit(arg, found) for arg in node.args))
    name = node.func.name
    if name not in _LABEL_ARGUMENTS:
        return scope
    created, reads = _LABEL_ARGUMENTS[name]
    strings = [a.val if isinstance(a, pp.StringLiteral) else "" for a in node.args]
    if created is not None and strings[created]:
        found.introduced.add(strings[created])
    found.label_uses += [LabelUse(label, scope, name) for label in strings[reads] if label]
    return scope

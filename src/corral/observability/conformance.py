"""Checks dashboards and alert rules against what the code exports (and the external allowlist)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from corral.observability.catalogue import Catalogue
from corral.observability.external import TARGET_LABELS, external_source
from corral.observability.promql import QueryError, References, from_grafana, references

_LABEL_VALUES = re.compile(
    r"^\s*label_values\(\s*(?:(?P<selector>.+?)\s*,\s*)?(?P<label>\w+)\s*\)\s*$"
)
_TEMPLATE_LABEL = re.compile(r"\$labels\.(\w+)")
_LEGEND_LABEL = re.compile(r"\{\{\s*(\w+)\s*\}\}")


@dataclass(frozen=True, slots=True)
class Query:
    """One PromQL query, where it was found, and the labels its legend or annotations show."""

    where: str
    expr: str
    templated_labels: tuple[str, ...] = ()


def dashboard_queries(path: Path) -> list[Query]:
    """Every panel target and query variable in a Grafana dashboard JSON file."""
    board = json.loads(path.read_text())
    found = [
        Query(
            f"{path.name}: panel {panel.get('title', '?')!r}",
            from_grafana(target["expr"]),
            tuple(_LEGEND_LABEL.findall(target.get("legendFormat", ""))),
        )
        for panel in _panels(board.get("panels", []))
        for target in panel.get("targets", [])
        if target.get("expr")
    ]
    for variable in board.get("templating", {}).get("list", []):
        if variable.get("type") != "query":
            continue
        query = variable.get("query")
        text = query.get("query", "") if isinstance(query, dict) else str(query or "")
        found.append(Query(f"{path.name}: variable {variable.get('name')!r}", _variable(text)))
    return found


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))


def _variable(text: str) -> str:
    """A query variable as PromQL: ``label_values(m, l)`` reads label ``l`` of ``m``."""
    match = _LABEL_VALUES.match(text)
    if match is None:
        return text
    selector = match["selector"] or "up"
    return f"count by ({match['label']}) ({selector})"


def rule_queries(path: Path) -> list[Query]:
    """Every alerting and recording rule expression in a Prometheus rules file."""
    document = yaml.safe_load(path.read_text())
    found = []
    for group in document.get("groups", []):
        for rule in group.get("rules", []):
            name = rule.get("alert") or rule.get("record")
            texts = [*rule.get("labels", {}).values(), *rule.get("annotations", {}).values()]
            templated = tuple(sorted({m for t in texts for m in _TEMPLATE_LABEL.findall(str(t))}))
            where = f"{path.name}: {group.get('name')}/{name}"
            found.append(Query(where, str(rule["expr"]), templated))
    return found


def problems(query: Query, catalogue: Catalogue) -> list[str]:
    """What is wrong with ``query``: unknown metrics or labels, unparseable PromQL, bad buckets."""
    try:
        refs = references(query.expr)
    except QueryError as exc:
        return [f"{query.where}: {exc}"]
    found = [f"{query.where}: {p}" for p in _selector_problems(refs, catalogue)]
    allowed = {metric: _labels_of(metric, catalogue) or frozenset() for metric in refs.metrics}
    uses = [(u.label, u.scope, u.clause) for u in refs.label_uses]
    uses += [(label, refs.metrics, "template") for label in query.templated_labels]
    for label, scope, clause in uses:
        if label in refs.introduced or label in TARGET_LABELS:
            continue
        if not any(label in allowed.get(metric, frozenset()) for metric in scope):
            names = ", ".join(sorted(scope)) or "no metric"
            found.append(f"{query.where}: label {label!r} ({clause}) is not exported by {names}")
    return found


def _labels_of(metric: str, catalogue: Catalogue) -> frozenset[str] | None:
    """Labels ``metric`` may carry, or None when neither Corral nor an allowed exporter has it."""
    series = catalogue.series().get(metric)
    if series is not None:
        return frozenset(series.labels) | TARGET_LABELS
    source = external_source(metric)
    if source is not None:
        bucket = {"le"} if metric.endswith("_bucket") else set()
        return source.labels | TARGET_LABELS | bucket
    return None


def _selector_problems(refs: References, catalogue: Catalogue) -> Iterator[str]:
    for selector in refs.selectors:
        if selector.metric is None:
            yield "a selector without a metric name cannot be checked; name the metric"
            continue
        allowed = _labels_of(selector.metric, catalogue)
        if allowed is None:
            yield (
                f"metric {selector.metric!r} is not exported by Corral "
                "(see docs/metrics.md) nor on the external allowlist"
            )
            continue
        for label, value in selector.matchers:
            if label not in allowed:
                yield f"label {label!r} is not exported by {selector.metric}"
            elif label == "le":
                yield from _bucket_problems(selector.metric, value, catalogue)


def _bucket_problems(metric: str, value: str, catalogue: Catalogue) -> Iterator[str]:
    entry = catalogue.entry_of(metric)
    if entry is not None and value not in entry.buckets:
        yield (f"{metric} has no bucket le={value!r}; its buckets are {', '.join(entry.buckets)}")

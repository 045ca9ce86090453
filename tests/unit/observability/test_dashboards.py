"""Dashboards and alert rules use only metrics and labels the code exports (or allowlisted ones)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from corral.observability.catalogue import Catalogue, build_catalogue
from corral.observability.conformance import (
    Query,
    dashboard_queries,
    problems,
    rule_queries,
)

ROOT = Path(__file__).resolve().parents[3]
DASHBOARDS = sorted((ROOT / "deploy" / "grafana").glob("*.json"))
RULES = sorted((ROOT / "deploy" / "prometheus").glob("alerts*.yaml"))  # not adapter values


@pytest.fixture(scope="module")
def catalogue() -> Catalogue:
    return build_catalogue()


def test_the_dashboards_and_the_alert_rules_exist() -> None:
    names = {p.stem for p in DASHBOARDS}
    assert names == {"platform-overview", "model", "gpu-fleet", "neuron"}
    assert [p.name for p in RULES] == ["alerts.yaml"]


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboard_queries_use_only_exported_metrics_and_labels(
    path: Path, catalogue: Catalogue
) -> None:
    queries = dashboard_queries(path)
    assert len(queries) >= 10
    assert [p for q in queries for p in problems(q, catalogue)] == []


@pytest.mark.parametrize("path", RULES, ids=lambda p: p.name)
def test_alert_rules_use_only_exported_metrics_and_labels(path: Path, catalogue: Catalogue) -> None:
    queries = rule_queries(path)
    assert len(queries) >= 8
    assert [p for q in queries for p in problems(q, catalogue)] == []


def test_the_alerts_cover_the_important_failures() -> None:
    rules = [r for g in yaml.safe_load(RULES[0].read_text())["groups"] for r in g["rules"]]
    names = {r["alert"] for r in rules}
    assert {"CorralHighErrorRate", "CorralTTFTBudgetBurnFast", "CorralGpuFaulty"} <= names
    for rule in rules:
        assert rule["labels"]["severity"] in {"page", "ticket", "info"}
        assert rule["annotations"]["summary"]
        assert rule["annotations"]["description"]


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboards_are_well_formed_grafana_json(path: Path) -> None:
    board = json.loads(path.read_text())
    assert board["uid"].startswith("corral-")
    assert board["title"].startswith("Corral / ")
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    panels = list(_all_panels(board["panels"]))
    assert len({p["id"] for p in panels}) == len(panels), "panel ids must be unique"
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        refs = [t["refId"] for t in panel["targets"]]
        assert refs, panel["title"]
        assert len(set(refs)) == len(refs), panel["title"]


def test_dashboard_uids_are_unique() -> None:
    uids = [json.loads(p.read_text())["uid"] for p in DASHBOARDS]
    assert len(set(uids)) == len(uids)


def _all_panels(panels: list[dict[str, Any]]) -> Any:
    for panel in panels:
        yield panel
        yield from _all_panels(panel.get("panels", []))


# The checker itself: each kind of mistake is caught, with a message that says what is wrong.


def _problems(expr: str, catalogue: Catalogue, templated: tuple[str, ...] = ()) -> list[str]:
    return problems(Query("test", expr, templated), catalogue)


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        ("rate(corral_request_total[5m])", "'corral_request_total' is not exported"),
        ('corral_requests_total{team="a"}', "label 'team' is not exported"),
        ("sum by (key_id) (corral_tokens_total)", "label 'key_id' (by) is not exported"),
        ("corral_tokens_total * on (device) corral_requests_in_flight", "label 'device' (on)"),
        ('corral_time_to_first_token_seconds_bucket{le="1.5"}', "has no bucket le='1.5'"),
        ('vllm:num_requests_waiting{model="x"}', "label 'model' is not exported"),
        ("DCGM_FI_DEV_GPU_TEMPERATURE", "'DCGM_FI_DEV_GPU_TEMPERATURE' is not exported"),
        ('{job="corral"}', "without a metric name"),
        ("sum(rate(corral_requests_total[5m])", "not valid PromQL"),
    ],
)
def test_the_checker_catches(expr: str, message: str, catalogue: Catalogue) -> None:
    [found] = _problems(expr, catalogue)
    assert message in found


@pytest.mark.parametrize(
    "expr",
    [
        "histogram_quantile(0.9, sum by (le, model) "
        "(rate(corral_request_duration_seconds_bucket[5m])))",
        'corral_time_to_first_token_seconds_bucket{le="2.0"}',
        "sum by (pod, instance, node) (corral_requests_in_flight)",
        'label_replace(corral_requests_total, "m", "$1", "model", "(.*)") * on (m) group_left up',
        "avg by (Hostname, gpu) (DCGM_FI_DEV_GPU_UTIL)",
        "histogram_quantile(0.5, sum by (le) (rate(vllm:inter_token_latency_seconds_bucket[5m])))",
        'up{job="corral-gateway"}',
    ],
)
def test_the_checker_accepts(expr: str, catalogue: Catalogue) -> None:
    assert _problems(expr, catalogue) == []


def test_alert_template_labels_must_exist(catalogue: Catalogue) -> None:
    assert _problems("corral_gpu_device_health == 0", catalogue, ("device", "node")) == []
    [problem] = _problems("corral_gpu_device_health == 0", catalogue, ("model",))
    assert "label 'model' (template)" in problem


def test_dashboard_files_are_read_panels_rows_and_variables(tmp_path: Path) -> None:
    board = {
        "panels": [
            {"type": "row", "panels": [{"title": "inner", "targets": [{"expr": "x_total"}]}]},
            {
                "title": "outer",
                "targets": [
                    {"expr": "rate(y[$__rate_interval])", "legendFormat": "{{model}} {{ pod }}"},
                    {"expr": ""},
                ],
            },
        ],
        "templating": {
            "list": [
                {"name": "datasource", "type": "datasource", "query": "prometheus"},
                {"name": "m", "type": "query", "query": {"query": "label_values(z, model)"}},
                {"name": "n", "type": "query", "query": "label_values(node)"},
            ]
        },
    }
    path = tmp_path / "b.json"
    path.write_text(json.dumps(board))
    queries = dashboard_queries(path)
    assert queries[1].templated_labels == ("model", "pod")
    exprs = [q.expr for q in queries]
    assert exprs == [
        "x_total",
        "rate(y[5m])",
        "count by (model) (z)",
        "count by (node) (up)",
    ]


def test_rule_files_are_read_with_their_template_labels(tmp_path: Path) -> None:
    rules = {
        "groups": [
            {
                "name": "g",
                "rules": [
                    {
                        "alert": "A",
                        "expr": "up == 0",
                        "labels": {"severity": "page"},
                        "annotations": {"summary": "{{ $labels.instance }} on {{$labels.pod}}"},
                    },
                    {"record": "r:x", "expr": "sum(up)"},
                ],
            }
        ]
    }
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(rules))
    [alert, record] = rule_queries(path)
    assert (alert.where, alert.expr, alert.templated_labels) == (
        "r.yaml: g/A",
        "up == 0",
        ("instance", "pod"),
    )
    assert record.where == "r.yaml: g/r:x"


def test_the_neuron_allowlist_is_what_neuron_monitor_exports() -> None:
    """Every allowlisted neuron-monitor series and label appears in a recorded scrape."""
    from prometheus_client.parser import text_string_to_metric_families

    from corral.observability.external import NEURON_MONITOR, TARGET_LABELS

    scrape = (ROOT / "tests" / "fixtures" / "observability" / "neuron-monitor.prom").read_text()
    series, labels = set(), set()
    for family in text_string_to_metric_families(scrape):
        for sample in family.samples:
            series.add(sample.name)
            labels |= set(sample.labels)
    assert series >= NEURON_MONITOR.series
    assert labels | TARGET_LABELS >= NEURON_MONITOR.labels

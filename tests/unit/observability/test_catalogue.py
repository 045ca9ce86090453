"""The metrics catalogue: read off the metric classes, labels within the rule, docs up to date."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from corral.observability.catalogue import METRIC_SETS, MetricSet, build_catalogue
from corral.observability.labels import forbidden_reason
from corral.observability.markdown import render_markdown

ROOT = Path(__file__).resolve().parents[3]


def test_the_catalogue_lists_every_gateway_metric_with_its_series_and_labels() -> None:
    catalogue = build_catalogue()
    series = catalogue.series()
    assert series["corral_requests_total"].labels == ("kind", "model", "status_class")
    assert series["corral_tokens_total"].labels == ("direction", "model")
    assert series["corral_time_to_first_token_seconds_bucket"].labels == ("le", "model")
    assert series["corral_requests_in_flight"].labels == ()
    entry = catalogue.entry_of("corral_request_duration_seconds_sum")
    assert entry is not None
    assert (entry.name, entry.type, entry.component) == (
        "corral_request_duration_seconds",
        "histogram",
        "gateway",
    )
    assert entry.buckets[-1] == "+Inf"


def test_every_component_contributes_and_series_names_are_unique() -> None:
    catalogue = build_catalogue()
    components = {entry.component for entry in catalogue}
    assert components == {metric_set.component for metric_set in METRIC_SETS}
    names = [s.name for entry in catalogue for s in entry.series]
    assert len(names) == len(set(names))


# Known and reported (issue 8): the endpoint metrics label each series with the endpoint's base
# URL under `endpoint`, which the Prometheus operator's ServiceMonitor target label overwrites (the
# metric's own becomes exported_endpoint). Remove these lines when the label is renamed.
KNOWN_VIOLATIONS: set[str] = set()


def test_no_catalogued_metric_has_a_forbidden_label() -> None:
    violations = build_catalogue().violations()
    unexpected = [v for v in violations if v.split(" ", 1)[0] not in KNOWN_VIOLATIONS]
    assert unexpected == []
    fixed = KNOWN_VIOLATIONS - {v.split(" ", 1)[0] for v in violations}
    assert fixed == set(), "fixed: remove these from KNOWN_VIOLATIONS"


def test_a_label_named_like_a_target_label_is_reported() -> None:
    def clash(registry: CollectorRegistry) -> None:
        Gauge("corral_clash", "Clashes.", ["instance"], registry=registry)

    [violation] = build_catalogue((MetricSet("clash", "a test", clash),)).violations()
    assert "exported_instance" in violation


def test_custom_collectors_are_described_by_the_labels_their_samples_carry() -> None:
    class Custom(Collector):
        def collect(self) -> Iterator[GaugeMetricFamily]:
            family = GaugeMetricFamily("corral_custom", "Custom.", labels=["model", "user_id"])
            family.add_metric(["m", "u"], 1.0)
            yield family

    def custom(registry: CollectorRegistry) -> None:
        registry.register(Custom())

    catalogue = build_catalogue((MetricSet("custom", "a test", custom),))
    [entry] = catalogue.entries
    assert entry.labels == ("model", "user_id")
    [violation] = catalogue.violations()
    assert "'user_id'" in violation


def test_every_metric_follows_prometheus_naming() -> None:
    for entry in build_catalogue():
        assert entry.name.startswith("corral_"), entry.name
        assert entry.help.endswith("."), f"{entry.name}: help should be a sentence"
        if entry.type == "counter":
            assert any(s.name == f"{entry.name}_total" for s in entry.series)
        assert not entry.name.endswith("_total"), "prometheus_client adds _total itself"


def test_a_metric_set_with_a_key_label_is_reported() -> None:
    def leaky(registry: CollectorRegistry) -> None:
        Counter("corral_leaky", "Leaks a key id.", ["model", "key_id"], registry=registry)
        Gauge("corral_fine", "Fine.", ["model"], registry=registry)

    catalogue = build_catalogue((MetricSet("leaky", "a test", leaky),))
    [violation] = catalogue.violations()
    assert "corral_leaky" in violation
    assert "'key_id'" in violation


def test_labelled_histograms_are_described_without_any_observation() -> None:
    def histogram(registry: CollectorRegistry) -> None:
        Histogram("corral_h_seconds", "H.", ["model"], buckets=(0.5, 1), registry=registry)

    [entry] = build_catalogue((MetricSet("h", "a test", histogram),)).entries
    assert {s.name for s in entry.series} >= {
        "corral_h_seconds_bucket",
        "corral_h_seconds_sum",
        "corral_h_seconds_count",
    }
    assert entry.buckets == ("0.5", "1.0", "+Inf")
    assert entry.labels == ("model",)


@pytest.mark.parametrize(
    ("label", "allowed"),
    [
        ("model", True),
        ("team", True),
        ("status_class", True),
        ("deployment", True),
        ("device", True),
        ("key_id", False),
        ("api_key", False),
        ("user_id", False),
        ("user", False),
        ("prompt", False),
        ("upstream_url", False),
        ("url", False),
        ("request_id", False),
        ("trace_id", False),
        ("path", False),
        ("email", False),
    ],
)
def test_forbidden_labels_rule(label: str, allowed: bool) -> None:
    reason = forbidden_reason(label)
    assert (reason is None) is allowed, reason


def test_docs_metrics_md_is_generated_from_the_code() -> None:
    expected = render_markdown(build_catalogue())
    actual = (ROOT / "docs" / "metrics.md").read_text()
    assert actual == expected, "docs/metrics.md is stale: run python scripts/metrics_catalogue.py"


def test_the_docs_name_every_series_and_the_external_allowlist() -> None:
    text = render_markdown(build_catalogue())
    assert "`corral_time_to_first_token_seconds_bucket`" in text
    assert "`DCGM_FI_DEV_GPU_UTIL`" in text
    assert "`vllm:num_requests_waiting`" in text
    assert "_created`" not in text

"""The PromQL reference extractor: metrics, matchers, grouping and label-function labels."""

from __future__ import annotations

import pytest

from corral.observability.promql import QueryError, from_grafana, references


def test_selectors_and_matchers() -> None:
    refs = references('sum(rate(corral_requests_total{model="a", status_class=~"5.."}[5m]))')
    [selector] = refs.selectors
    assert selector.metric == "corral_requests_total"
    assert selector.matchers == (("model", "a"), ("status_class", "5.."))
    assert refs.metrics == {"corral_requests_total"}


def test_metric_named_by_the_name_matcher_and_colon_names() -> None:
    refs = references('{__name__="up", job="x"} + vllm:num_requests_waiting')
    assert refs.metrics == {"up", "vllm:num_requests_waiting"}
    assert refs.selectors[0].labels == {"job"}


def test_a_selector_without_a_name_has_no_metric() -> None:
    [selector] = references('{job="x"}').selectors
    assert selector.metric is None


def test_or_matchers_are_all_seen() -> None:
    [selector] = references('foo{a="1" or b="2"}').selectors
    assert selector.labels == {"a", "b"}


def test_grouping_labels_are_scoped_to_the_aggregated_expression() -> None:
    refs = references("sum by (le, model) (rate(a_bucket[5m])) / ignoring (x) sum without (y) (b)")
    uses = {(u.label, u.clause): u.scope for u in refs.label_uses}
    assert uses[("le", "by")] == {"a_bucket"}
    assert uses[("model", "by")] == {"a_bucket"}
    assert uses[("y", "without")] == {"b"}
    assert uses[("x", "ignoring")] == {"a_bucket", "b"}


def test_on_and_group_left_labels() -> None:
    refs = references("a * on (model) group_left (team) b")
    assert {(u.label, u.clause) for u in refs.label_uses} == {("model", "on"), ("team", "group")}


def test_label_functions_create_and_read_labels() -> None:
    refs = references(
        'sort_by_label(label_join(label_replace(m, "dst", "$1", "src", "(.*)"), '
        '"j", ",", "s1", "s2"), "z")'
    )
    assert refs.introduced == {"dst", "j"}
    read = {u.label: u.clause for u in refs.label_uses}
    assert read == {
        "src": "label_replace",
        "s1": "label_join",
        "s2": "label_join",
        "z": "sort_by_label",
    }


def test_count_values_creates_its_label() -> None:
    assert references('count_values("version", build_info)').introduced == {"version"}


def test_nested_functions_subqueries_and_unary() -> None:
    refs = references("-max_over_time((rate(a[1m]) > 0)[10m:1m]) or vector(0)")
    assert refs.metrics == {"a"}


def test_grafana_interval_variables_become_durations() -> None:
    query = 'rate(a{m="$model"}[$__rate_interval]) + increase(b[${__range}])'
    refs = references(from_grafana(query))
    assert refs.metrics == {"a", "b"}
    assert refs.selectors[0].matchers == (("m", "$model"),)


def test_invalid_promql_raises() -> None:
    with pytest.raises(QueryError, match="not valid PromQL"):
        references("sum(rate(a[5m])")

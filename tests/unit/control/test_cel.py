"""CEL rules from the CRDs: evaluated where cel-python can, counted and named where it cannot."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from corral.control.render.manifests import external_references, render
from corral.control.spec import DeploymentSpec, load_spec
from corral.control.validation.cel import check_cel, coverage
from corral.control.validation.cel_rules import compile_rule, evaluate
from corral.control.validation.crds import (
    compact_crd,
    openapi_schema,
    packaged_schemas,
    validate_custom,
)
from corral.control.validation.manifests import ensure_valid, validate_manifests

FIXTURES = Path(__file__).parents[2] / "fixtures" / "control"
GOLDENS = sorted((FIXTURES / "golden").glob("*.yaml"))
SHARED_CRDS = Path("/work/shared/kubernetes/crds")

Obj = dict[str, Any]


@pytest.fixture(scope="module")
def small() -> DeploymentSpec:
    return load_spec(FIXTURES / "specs" / "small-gpu.yaml")


def of_kind(spec: DeploymentSpec, kind: str) -> Obj:
    return copy.deepcopy(next(o for o in render(spec) if o["kind"] == kind))


def requirement(**fields: Any) -> Callable[[Obj], None]:
    def change(pool: Obj) -> None:
        pool["spec"]["template"]["spec"]["requirements"].append(fields)

    return change


def set_in(*path: str, value: Any) -> Callable[[Obj], None]:
    def change(obj: Obj) -> None:
        node = obj
        for key in path[:-1]:
            node = node.setdefault(key, {})
        node[path[-1]] = value

    return change


GPUS = "karpenter.k8s.aws/instance-gpu-count"
NODEPOOL_CASES = {
    "In without values": (
        requirement(key="karpenter.k8s.aws/instance-family", operator="In", values=[]),
        "spec.template.spec.requirements: requirements with operator 'In' must have a value",
    ),
    "restricted karpenter.sh key": (
        requirement(key="karpenter.sh/zone", operator="Exists"),
        'spec.template.spec.requirements[3].key: label domain "karpenter.sh" is restricted',
    ),
    "hostname key": (
        requirement(key="kubernetes.io/hostname", operator="Exists"),
        'requirements[3].key: label "kubernetes.io/hostname" is restricted',
    ),
    "Gt with two values": (
        requirement(key=GPUS, operator="Gt", values=["1", "2"]),
        "must have a single positive integer value",
    ),
    "Gt with a negative value": (
        requirement(key=GPUS, operator="Gt", values=["-1"]),
        "must have a single positive integer value",
    ),
    "Gt with a word": (
        requirement(key=GPUS, operator="Gt", values=["many"]),
        "must have a single positive integer value (error evaluating rule",
    ),
    "minValues above the values given": (
        requirement(
            key="karpenter.k8s.aws/instance-family", operator="In", values=["g6"], minValues=2
        ),
        "requirements with 'minValues' must have at least that many values",
    ),
    "budget schedule without duration": (
        set_in("spec", "disruption", "budgets", value=[{"nodes": "10%", "schedule": "@daily"}]),
        "spec.disruption.budgets: 'schedule' must be set with 'duration'",
    ),
    "restricted template label": (
        set_in("spec", "template", "metadata", "labels", value={"karpenter.sh/nodepool": "x"}),
        'spec.template.metadata.labels: label "karpenter.sh/nodepool" is restricted',
    ),
    "static pool with weight": (
        set_in("spec", "replicas", value=2),
        "spec: 'weight' is not supported on static NodePools",
    ),
    "empty nodeClassRef name": (
        set_in("spec", "template", "spec", "nodeClassRef", "name", value=""),
        "spec.template.spec.nodeClassRef.name: name may not be empty",
    ),
}

NODECLASS_CASES = {
    "role and instance profile": (
        set_in("spec", "instanceProfile", value="corral-nodes"),
        "spec: must specify exactly one of ['role', 'instanceProfile']",
    ),
    "amiFamily against the alias": (
        set_in("spec", "amiFamily", value="Bottlerocket"),
        "spec: if set, amiFamily must be 'AL2023' or 'Custom' when using an AL2023 alias",
    ),
    "unknown alias family": (
        set_in("spec", "amiSelectorTerms", value=[{"alias": "ubuntu@latest"}]),
        "spec.amiSelectorTerms[0].alias: family is not supported",
    ),
    "restricted tag": (
        set_in("spec", "tags", value={"kubernetes.io/cluster/prod": "owned"}),
        "spec.tags: tag contains a restricted tag matching kubernetes.io/cluster",
    ),
    "empty subnet selector": (
        set_in("spec", "subnetSelectorTerms", value=[{}]),
        "spec.subnetSelectorTerms: expected at least one, got none, ['tags', 'id']",
    ),
}


@pytest.mark.parametrize(
    ("kind", "case"),
    [
        *(("NodePool", c) for c in NODEPOOL_CASES),
        *(("EC2NodeClass", c) for c in NODECLASS_CASES),
    ],
)
def test_cel_catches_what_the_schema_lets_through(
    small: DeploymentSpec, kind: str, case: str
) -> None:
    change, expected = {**NODEPOOL_CASES, **NODECLASS_CASES}[case]
    obj = of_kind(small, kind)
    change(obj)
    assert validate_custom(obj) == [], "the plain schema alone should accept this"
    found = validate_manifests([obj]).problems
    name = f"{kind}/corral-llama-8b: "
    assert any(p.startswith(name) and expected in p for p in found), found


def test_all_objects_with_a_cel_problem_are_named_in_ensure_valid(small: DeploymentSpec) -> None:
    objs = copy.deepcopy(render(small))
    pool = next(o for o in objs if o["kind"] == "NodePool")
    pool["spec"]["disruption"]["budgets"] = [{"nodes": "1", "duration": "1h"}]
    from corral.errors import ConfigError

    with pytest.raises(ConfigError) as info:
        ensure_valid(objs, external=external_references(small))
    assert "NodePool/corral-llama-8b: spec.disruption.budgets: 'schedule' must be set" in str(
        info.value.message
    )


@pytest.mark.parametrize("golden", GOLDENS, ids=[p.stem for p in GOLDENS])
def test_every_golden_manifest_passes_cel(golden: Path) -> None:
    objs = [o for o in yaml.safe_load_all(golden.read_text()) if o]
    spec = load_spec(FIXTURES / "specs" / golden.name)
    report = validate_manifests(objs, external=external_references(spec))
    assert report.problems == []
    assert report.cel.not_evaluable == {}
    assert report.cel.skipped == 0
    if any(o["kind"] == "NodePool" for o in objs):
        assert report.cel.evaluated > 10
        assert report.cel.transition > 0


def test_golden_cel_checks_run_per_object(small: DeploymentSpec) -> None:
    pool = of_kind(small, "NodePool")
    schema = openapi_schema(pool)
    assert schema is not None
    outcome = check_cel(pool, schema)
    # 3 requirements × 4 key rules, 3 list rules, 4 label rules, 1 budget rule, 3 name rules,
    # 2 rules on spec (replicas absent); the 3 oldSelf rules are skipped.
    assert (outcome.evaluated, outcome.transition, outcome.skipped) == (25, 3, 0)


def test_packaged_rule_coverage_is_counted() -> None:
    found = coverage(packaged_schemas())
    assert (found.evaluable, found.transition, len(found.not_evaluable)) == (78, 9, 0)
    assert found.via_shims == 14  # find() in 12 rules, split() in 2
    assert found.summary() == (
        "87 CEL rules: 78 evaluable (14 through Corral's shims of Kubernetes functions), "
        "9 transition rules (skipped), 0 not evaluable"
    )


@pytest.mark.skipif(not SHARED_CRDS.exists(), reason="upstream CRDs not present")
def test_upstream_rule_coverage_is_counted() -> None:
    schemas = []
    for path in sorted(SHARED_CRDS.glob("*.yaml")):
        crd = compact_crd(yaml.safe_load(path.read_text()))
        schemas += [(f"{path.stem} {v}", s) for v, s in crd["versions"].items()]
    found = coverage(schemas)
    assert (found.evaluable, found.transition, len(found.not_evaluable)) == (94, 15, 0)


SCHEMA_WITH_ODD_RULES: Obj = {
    "type": "object",
    "properties": {
        "spec": {
            "type": "object",
            "x-kubernetes-validations": [
                {"rule": "self.sizes.isSorted()", "message": "sizes must be sorted"},
                {"rule": "self.?name.orValue('') != 'x'"},
                {"rule": "self.name == oldSelf.name", "message": "name is immutable"},
                {"rule": "self.name.startsWith('a')", "message": "name starts with a"},
            ],
            "properties": {
                "name": {"type": "string"},
                "sizes": {"type": "array", "items": {"type": "integer"}},
            },
        }
    },
}


def test_rules_that_cannot_be_evaluated_are_counted_and_named_not_passed() -> None:
    outcome = check_cel({"spec": {"name": "b", "sizes": [2, 1]}}, SCHEMA_WITH_ODD_RULES)
    assert outcome.problems == ["spec: name starts with a"]
    assert (outcome.evaluated, outcome.transition, outcome.skipped) == (1, 1, 2)
    assert "isSorted()" in outcome.not_evaluable["self.sizes.isSorted()"]
    assert "cannot parse" in outcome.not_evaluable["self.?name.orValue('') != 'x'"]
    assert "2 not evaluable ('self.sizes.isSorted()': uses isSorted()" in outcome.summary()


def test_static_coverage_lists_each_rule_that_is_not_evaluable() -> None:
    found = coverage([("example", SCHEMA_WITH_ODD_RULES)])
    assert (found.evaluable, found.transition) == (1, 1)
    assert [(w, r) for w, r, _ in found.not_evaluable] == [
        ("example spec", "self.sizes.isSorted()"),
        ("example spec", "self.?name.orValue('') != 'x'"),
    ]


def test_validation_report_summary_shows_cel_coverage(small: DeploymentSpec) -> None:
    report = ensure_valid(render(small), external=external_references(small))
    assert report.ok
    assert report.summary().startswith("valid; CEL: ")
    assert "transition-rule checks skipped" in report.summary()


def test_field_path_is_added_to_the_node_path() -> None:
    schema = {
        "type": "object",
        "properties": {
            "spec": {
                "type": "object",
                "x-kubernetes-validations": [
                    {"rule": "self.a < self.b", "message": "a below b", "fieldPath": ".a"}
                ],
            }
        },
    }
    assert check_cel({"spec": {"a": 2, "b": 1}}, schema).problems == ["spec.a: a below b"]


def test_map_values_and_list_items_are_walked() -> None:
    item = {"type": "string", "x-kubernetes-validations": [{"rule": "self != ''"}]}
    schema = {
        "type": "object",
        "properties": {
            "tags": {"type": "object", "additionalProperties": item},
            "names": {"type": "array", "items": item},
        },
    }
    found = check_cel({"tags": {"team": ""}, "names": ["a", ""]}, schema).problems
    assert found == ["tags[team]: self != ''", "names[1]: self != ''"]


@pytest.mark.parametrize(
    ("rule", "value", "holds"),
    [
        ("self.find('^([^/]+)') == 'karpenter.sh'", "karpenter.sh/zone", True),
        ("self.find('[0-9]+') == ''", "no digits", True),
        ("self.findAll('[0-9]') == ['1', '2']", "a1b2", True),
        ("self.findAll('[0-9]', 1) == ['1']", "a1b2", True),
        ("self.split('@') == ['al2023', 'latest']", "al2023@latest", True),
        ("self.split('/', 2) == ['a', 'b/c']", "a/b/c", True),
        ("self.split('/', 0) == []", "a/b", True),
        ("self.split('', 2) == ['a', 'bc']", "abc", True),
        ("self.lowerAscii() == 'gpu'", "GPU", True),
        ("self.upperAscii() == 'GPU'", "gpu", True),
        ("self.matches('^[a-z]+$')", "Abc", False),
    ],
)
def test_kubernetes_function_shims(rule: str, value: Any, holds: bool) -> None:
    compiled = compile_rule(rule)
    assert compiled.status == "evaluable"
    result = evaluate(compiled, value)
    assert (result.evaluated, result.holds) == (True, holds)


def test_a_bad_regex_is_an_evaluation_error() -> None:
    result = evaluate(compile_rule("self.find('(') == ''"), "x")
    assert not result.holds
    assert result.detail.startswith("error evaluating rule")

"""EKS Auto Mode (issue 18): Corral's own NodeClass, sized from the model, checked against the
schema written from AWS's documentation, and GPU pools selected by Auto Mode's instance labels."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from corral.control.feasibility.check import check_feasibility
from corral.control.planner.disk import allowed_instances, disk_need
from corral.control.planner.instances import load_price_table
from corral.control.planner.sizing import size_to_plan
from corral.control.render.manifests import render
from corral.control.spec import parse_spec
from corral.control.validation.crds import schema_file_for, validate_custom
from corral.errors import ConfigError
from support.goldens import golden, of_kind, spec_data

TABLE = load_price_table()


def auto_spec() -> dict[str, Any]:
    return spec_data("auto-mode.yaml")


def auto_golden() -> list[dict[str, Any]]:
    return golden("auto-mode.yaml")


def test_the_nodepool_uses_corrals_nodeclass_and_auto_modes_labels() -> None:
    objs = auto_golden()
    node_class, pool = of_kind(objs, "NodeClass"), of_kind(objs, "NodePool")
    ref = pool["spec"]["template"]["spec"]["nodeClassRef"]
    assert ref == {
        "group": "eks.amazonaws.com",
        "kind": "NodeClass",
        "name": node_class["metadata"]["name"],
    }
    reqs = {r["key"]: r["values"] for r in pool["spec"]["template"]["spec"]["requirements"]}
    assert reqs["eks.amazonaws.com/instance-gpu-manufacturer"] == ["nvidia"]
    assert reqs["eks.amazonaws.com/instance-gpu-name"] == ["l40s"]
    assert not any(k.startswith("karpenter.k8s.aws/") for k in reqs)


def test_ephemeral_storage_holds_images_cache_and_replicas_on_the_largest_node() -> None:
    spec = size_to_plan(parse_spec(auto_spec()), TABLE).spec  # what deploy renders
    size = of_kind(auto_golden(), "NodeClass")["spec"]["ephemeralStorage"]["size"]
    need = max(disk_need(spec, i).total_gib for i in allowed_instances(spec, TABLE))
    assert size == f"{need}Gi"
    assert need > 80  # more than the built-in default NodeClass gives


def test_a_neuron_pool_selects_the_instance_family_and_keeps_the_default_scheduler() -> None:
    data = auto_spec()
    data["accelerator"] = {"type": "inf2", "count": 1, "tensor_parallel": 2}
    data["model"] = {"source": "meta-llama/Llama-3.1-8B-Instruct"}
    data["engine"] = {"runtime": "rayservice", "max_model_len": 4096, "max_num_seqs": 4}
    objs = render(parse_spec(data), TABLE)
    pool = of_kind(objs, "NodePool")
    reqs = {r["key"]: r["values"] for r in pool["spec"]["template"]["spec"]["requirements"]}
    assert reqs["eks.amazonaws.com/instance-family"] == ["inf2"]
    worker = of_kind(objs, "RayService")["spec"]["rayClusterConfig"]["workerGroupSpecs"][0]
    assert "schedulerName" not in worker["template"]["spec"]


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (("ephemeralStorage", "size"), "80GB", "does not match"),
        (("ephemeralStorage", "iops"), 100, "less than the minimum of 3000"),
        (("ephemeralStorage", "throughput"), 2000, "greater than the maximum of 1000"),
        (("snatPolicy",), "Sometimes", "is not one of"),
        (("volumeSize",), "100Gi", "Additional properties are not allowed"),
    ],
)
def test_the_nodeclass_schema_refuses_what_aws_documents_as_invalid(
    path: tuple[str, ...], value: object, message: str
) -> None:
    node_class = copy.deepcopy(of_kind(auto_golden(), "NodeClass"))
    assert schema_file_for(node_class) == "eks.amazonaws.com_nodeclasses.json"
    assert validate_custom(node_class) == []
    target = node_class["spec"]
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    (problem,) = validate_custom(node_class)
    assert message in problem


def test_too_small_ephemeral_storage_is_refused_with_the_fix() -> None:
    data = auto_spec()
    data["capacity"]["node_class"]["root_volume_gib"] = 100
    spec = parse_spec(data)
    report = check_feasibility(spec, render(spec, TABLE), TABLE)
    assert report.problems
    assert "NodeClass/corral-qwen-7b" in report.problems[0].reason
    assert "ephemeralStorage.size" in report.problems[0].fix


def test_auto_mode_without_a_node_class_names_what_to_set() -> None:
    data = auto_spec()
    del data["capacity"]["node_class"]
    with pytest.raises(ConfigError, match="provisioner auto-mode needs node_class"):
        parse_spec(data)


def test_karpenter_neuron_workers_use_the_neuron_scheduler() -> None:
    from corral.control.render.common import NEURON_SCHEDULER

    objs = golden("neuron-inf2.yaml")
    worker = of_kind(objs, "RayService")["spec"]["rayClusterConfig"]["workerGroupSpecs"][0]
    assert worker["template"]["spec"]["schedulerName"] == NEURON_SCHEDULER
    head = of_kind(objs, "RayService")["spec"]["rayClusterConfig"]["headGroupSpec"]
    assert "schedulerName" not in head["template"]["spec"]  # the CPU head needs no Neuron cores

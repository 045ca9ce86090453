"""Multi-node replicas (issue 18): Llama-3.1-405B fp8 as TP8 × PP2 on two p5.48xlarge, as a
KubeRay multi-host worker group and as a LeaderWorkerSet, over EFA in one zone."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from corral.control.feasibility.binpack import place
from corral.control.feasibility.check import check_feasibility, ray_problems
from corral.control.feasibility.groups import group_problems, groups
from corral.control.feasibility.ray_cluster import node_types, replica_shapes
from corral.control.planner.instances import load_price_table
from corral.control.preparation import prepare
from corral.control.render.multi_node import EFA_ENV
from corral.control.spec import load_spec, parse_spec
from corral.errors import ConfigError
from support.goldens import FIXTURES, golden, of_kind, spec_data

TABLE = load_price_table()
RAY = "llama-405b-ray-efa.yaml"
LWS = "llama-405b-lws-efa.yaml"


def test_rays_own_derivation_sees_two_hosts_per_replica() -> None:
    kuberay = pytest.importorskip("ray.autoscaler._private.kuberay.autoscaling_config")
    service = of_kind(golden(RAY), "RayService")
    group = service["spec"]["rayClusterConfig"]["workerGroupSpecs"][0]
    assert group["numOfHosts"] == 2
    cluster = {"metadata": service["metadata"], "spec": service["spec"]["rayClusterConfig"]}
    derived = kuberay._derive_autoscaling_config_from_ray_cr(cluster)
    workers = derived["available_node_types"][group["groupName"]]
    assert workers["resources"]["GPU"] == 8
    assert (workers["min_workers"], workers["max_workers"]) == (2, 4)  # replicas 1..2 × 2 hosts


def test_the_replicas_sixteen_gpu_bundles_span_two_workers() -> None:
    service = of_kind(golden(RAY), "RayService")
    (shape,) = replica_shapes(service)
    assert sum(b.get("GPU", 0) for b in shape.bundles) == 16
    assert shape.strategy == "PACK"  # Ray Serve LLM's default lets the group span nodes
    placed = place(node_types(service), shape, 1, from_zero=True)
    assert placed.ok
    assert placed.nodes == {"h100-workers": 2}
    assert place(node_types(service), shape, 2).nodes == {"h100-workers": 4}


def test_one_host_per_group_cannot_place_a_two_node_replica() -> None:
    service = copy.deepcopy(of_kind(golden(RAY), "RayService"))
    service["spec"]["rayClusterConfig"]["workerGroupSpecs"][0]["numOfHosts"] = 1
    (problem,) = ray_problems(service)
    assert "cannot place a replica" in problem.reason


@pytest.mark.parametrize("name", [RAY, LWS])
def test_every_pod_of_the_group_requests_efa_and_the_efa_environment(name: str) -> None:
    objs = golden(name)
    (group,) = groups(objs)
    assert group.hosts == 2
    assert group.parallel == 16
    for pod in group.pods:
        container = pod["spec"]["containers"][0]
        assert container["resources"]["limits"]["vpc.amazonaws.com/efa"] == "32"
        assert container["resources"]["limits"]["nvidia.com/gpu"] == "8"
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert {k: env[k] for k, _, _ in EFA_ENV} == {k: v for k, v, _ in EFA_ENV}
        assert env["FI_PROVIDER"] == "efa"
        assert container["securityContext"]["capabilities"]["add"] == ["IPC_LOCK"]
    assert group_problems(objs) == []


@pytest.mark.parametrize("name", [RAY, LWS])
def test_the_nodepool_allows_only_efa_capable_instances(name: str) -> None:
    pool = of_kind(golden(name), "NodePool")
    reqs = {r["key"]: r["values"] for r in pool["spec"]["template"]["spec"]["requirements"]}
    assert reqs["node.kubernetes.io/instance-type"] == ["p5.48xlarge"]
    assert all(
        i.efa > 0 for i in TABLE.instances if i.name in reqs["node.kubernetes.io/instance-type"]
    )


def test_a_pinned_zone_becomes_a_nodepool_requirement() -> None:
    pool = of_kind(golden(RAY), "NodePool")
    reqs = {r["key"]: r["values"] for r in pool["spec"]["template"]["spec"]["requirements"]}
    assert reqs["topology.kubernetes.io/zone"] == ["us-east-1a"]


def _lws(objs: list[dict[str, Any]]) -> dict[str, Any]:
    return of_kind(objs, "LeaderWorkerSet")["spec"]["leaderWorkerTemplate"]


def test_a_pod_without_efa_is_refused() -> None:
    objs = copy.deepcopy(golden(LWS))
    worker = _lws(objs)["workerTemplate"]["spec"]["containers"][0]["resources"]
    for part in ("requests", "limits"):
        del worker[part]["vpc.amazonaws.com/efa"]
    (problem,) = group_problems(objs)
    assert "falls back to TCP" in problem.reason


def test_pods_free_to_land_in_different_zones_are_refused() -> None:
    objs = copy.deepcopy(golden(LWS))
    for key in ("leaderTemplate", "workerTemplate"):
        del _lws(objs)[key]["spec"]["affinity"]
    problems = group_problems(objs)
    assert problems
    assert all("availability zones" in p.reason for p in problems)


def test_a_group_whose_pods_do_not_hold_tp_times_pp_is_refused() -> None:
    objs = copy.deepcopy(golden(LWS))
    _lws(objs)["size"] = 3
    assert any("do not hold the engine's TP×PP = 16" in p.reason for p in group_problems(objs))


def test_a_nodepool_limit_below_max_replicas_is_refused() -> None:
    objs = copy.deepcopy(golden(RAY))
    of_kind(objs, "NodePool")["spec"]["limits"]["nvidia.com/gpu"] = "16"
    (problem,) = group_problems(objs)
    assert "2 replica(s) × 16 devices need 32" in problem.reason


def test_the_leader_serves_with_ray_as_vllms_executor_and_the_service_selects_it() -> None:
    objs = golden(LWS)
    lws = _lws(objs)
    command = lws["leaderTemplate"]["spec"]["containers"][0]["command"][-1]
    for flag in (
        "--tensor-parallel-size 8",
        "--pipeline-parallel-size 2",
        "--distributed-executor-backend ray",
        "leader --ray_cluster_size=$(LWS_GROUP_SIZE)",
    ):
        assert flag in command
    worker = lws["workerTemplate"]["spec"]["containers"][0]["command"][-1]
    assert "worker --ray_address=$(LWS_LEADER_ADDRESS)" in worker
    selector = of_kind(objs, "Service")["spec"]["selector"]
    assert lws["leaderTemplate"]["metadata"]["labels"].items() >= selector.items()
    assert not lws["workerTemplate"]["metadata"]["labels"].items() >= selector.items()


def test_the_whole_layout_is_feasible_and_the_single_node_spec_points_to_nodes() -> None:
    for name in (RAY, LWS):
        spec = load_spec(FIXTURES / "specs" / name)
        assert check_feasibility(spec, golden(name), TABLE).problems == []
    refused = load_spec(FIXTURES / "refused" / "llama-405b-fp8-h100-2-nodes.yaml")
    with pytest.raises(ConfigError) as err:
        prepare(refused, TABLE)
    assert "accelerator.nodes 2 (a multi-node replica over EFA)" in str(err.value)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"accelerator": {"nodes": 4}}, "must divide pipeline_parallel"),
        ({"capacity": {"provisioner": "auto-mode"}}, "needs provisioner karpenter"),
        ({"replicas": {"min": 1, "max": 2}}, "fixed group count"),
        (
            {
                "accelerator": {
                    "type": "trn1",
                    "count": 16,
                    "tensor_parallel": 16,
                    "pipeline_parallel": 2,
                    "nodes": 2,
                }
            },
            "needs an NVIDIA accelerator",
        ),
    ],
)
def test_unsupported_multi_node_specs_name_the_fix(change: dict[str, Any], message: str) -> None:
    data = spec_data(LWS)
    for key, value in change.items():
        data[key] = {**data.get(key, {}), **value}
    with pytest.raises(ConfigError, match=message):
        parse_spec(data)


def test_too_few_nodes_for_the_devices_names_the_fix() -> None:
    data = spec_data(RAY)
    data["accelerator"] = {**data["accelerator"], "pipeline_parallel": 4}  # 32 GPUs on 2 nodes
    spec = parse_spec(data)
    with pytest.raises(ConfigError) as err:
        prepare(spec, TABLE)
    assert "2 nodes × 16 h100 GPUs per replica" in str(err.value)
    assert "or more nodes" in str(err.value)

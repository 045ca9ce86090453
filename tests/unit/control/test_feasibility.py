"""The feasibility check against its rules' owners: Ray's KubeRay autoscaler derivation, Ray Serve
LLM's bundles, Kubernetes scheduling and eviction rules, vLLM's engine rules (issue 17)."""

from __future__ import annotations

import ast
import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from corral.control.feasibility.binpack import place
from corral.control.feasibility.check import check_feasibility, ray_problems
from corral.control.feasibility.pods import tolerates
from corral.control.feasibility.ray_cluster import (
    encoded_node_types,
    llm_bundles,
    node_types,
    replica_shapes,
)
from corral.control.planner.instances import load_price_table
from corral.control.planner.sizing import size_to_plan
from corral.control.preparation import prepare
from corral.control.spec import load_spec
from corral.errors import ConfigError

FIXTURES = Path(__file__).parents[2] / "fixtures" / "control"
SPECS = sorted((FIXTURES / "specs").glob("*.yaml"))
REFUSED = FIXTURES / "refused"
TABLE = load_price_table()


def ray_module(name: str) -> Any:
    """A module of Ray, the oracle; the test is skipped where corral[ray] is not installed."""
    return pytest.importorskip(name)


KUBERAY = "ray.autoscaler._private.kuberay.autoscaling_config"
SERVE_LLM_ACCELERATORS = "ray.llm._internal.serve.core.configs.accelerators"


def golden(name: str) -> list[dict[str, Any]]:
    return list(yaml.safe_load_all((FIXTURES / "golden" / name).read_text()))


def of_kind(objs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    return next(o for o in objs if o["kind"] == kind)


RAY_GOLDENS = [p.name for p in SPECS if any(o["kind"] == "RayService" for o in golden(p.name))]


@pytest.mark.parametrize("name", [p.name for p in SPECS])
def test_every_golden_file_passes_the_feasibility_check(name: str) -> None:
    # The check reads the checked-in manifests, not a fresh render.
    spec = size_to_plan(load_spec(FIXTURES / "specs" / name), TABLE).spec
    report = check_feasibility(spec, golden(name), TABLE)
    assert report.problems == []
    assert "engine arguments" in report.checked


@pytest.mark.parametrize("name", RAY_GOLDENS)
def test_encoded_node_types_agree_with_rays_kuberay_derivation(name: str) -> None:
    service = of_kind(golden(name), "RayService")
    cluster = {"metadata": service["metadata"], "spec": service["spec"]["rayClusterConfig"]}
    derived = ray_module(KUBERAY)._derive_autoscaling_config_from_ray_cr(cluster)
    ours = {t.name: t for t in encoded_node_types(service["spec"]["rayClusterConfig"])}
    assert set(ours) == set(derived["available_node_types"])
    for type_name, theirs in derived["available_node_types"].items():
        assert ours[type_name].resources == theirs["resources"]
        assert (ours[type_name].min_workers, ours[type_name].max_workers) == (
            theirs["min_workers"],
            theirs["max_workers"],
        )


def _rays_merge() -> Any:
    """Ray Serve LLM's ``_merge_replica_actor_and_child_actor_bundles``, compiled from the
    installed source: its module imports pyarrow, which ray[serve] does not install."""
    server_pkg = ray_module("ray.llm._internal.serve.core.server")

    source = (Path(server_pkg.__path__[0]) / "llm_server.py").read_text()
    tree = ast.parse(source)
    func = next(
        n
        for n in tree.body
        if isinstance(n, ast.FunctionDef)
        and n.name == "_merge_replica_actor_and_child_actor_bundles"
    )
    namespace: dict[str, Any] = {"copy": copy, "Dict": dict, "List": list}
    exec(compile(ast.Module([func], []), "llm_server.py", "exec"), namespace)
    return namespace[func.name]


@pytest.mark.parametrize(("tp", "pp"), [(1, 1), (2, 1), (4, 2)])
def test_gpu_bundles_are_the_ones_ray_serve_llm_builds(tp: int, pp: int) -> None:
    llm = {
        "accelerator_type": "L4",
        "engine_kwargs": {"tensor_parallel_size": tp, "pipeline_parallel_size": pp},
    }
    child = (
        ray_module(SERVE_LLM_ACCELERATORS)
        .GPUAccelerator()
        .default_bundles(num_devices=tp * pp, accelerator_type_str="L4")
    )
    expected = _rays_merge()(child, {"CPU": 1, "GPU": 0})
    bundles, strategy = llm_bundles(llm)
    assert bundles == expected
    assert strategy == "PACK"


def test_neuron_bundles_resolve_to_no_gpu_in_ray_serve_llm() -> None:
    service = of_kind(golden("neuron-inf2.yaml"), "RayService")
    llm = yaml.safe_load(service["spec"]["serveConfigV2"])["applications"][0]["args"]
    config = llm["llm_configs"][0]["placement_group_config"]
    assert ray_module(SERVE_LLM_ACCELERATORS).infer_hardware_kind_from_bundles(config) == "cpu"
    (shape,) = replica_shapes(service)
    assert shape.bundles == [{"CPU": 2.0, "neuron_cores": 2.0, "GPU": 0.0}]
    assert shape.strategy == "STRICT_PACK"


# Defect 1: Ray's autoscaler derives custom resources only from rayStartParams.resources
# (ray/autoscaler/_private/kuberay/autoscaling_config.py: _get_custom_resources), and Ray Serve
# LLM asks for accelerator_type:<type> in every bundle (core/configs/accelerators.py:
# GPUAccelerator.default_bundles). A worker group that does not advertise it never scales.
@pytest.mark.parametrize("name", RAY_GOLDENS)
def test_replicas_place_at_min_max_and_from_zero_with_rays_node_types(name: str) -> None:
    service = of_kind(golden(name), "RayService")
    types = node_types(service)  # Ray's own derivation (Ray is installed here)
    for shape in replica_shapes(service):
        for count, from_zero in (
            (shape.min_replicas, False),
            (shape.max_replicas, False),
            (1, True),
        ):
            placed = place(types, shape, count, from_zero=from_zero)
            assert placed.ok, (count, from_zero, placed)
        workers = place(types, shape, shape.max_replicas).nodes
        assert sum(workers.values()) <= sum(t.max_workers for t in types)


def test_a_worker_group_without_the_accelerator_resource_never_scales() -> None:
    service = copy.deepcopy(of_kind(golden("small-gpu.yaml"), "RayService"))
    assert ray_problems(service) == []
    service["spec"]["rayClusterConfig"]["workerGroupSpecs"][0]["rayStartParams"] = {}
    (problem,) = ray_problems(service)
    assert "accelerator_type:L4" in problem.reason
    assert "rayStartParams.resources" in problem.fix


def test_max_replicas_beyond_the_worker_groups_max_is_refused() -> None:
    service = copy.deepcopy(of_kind(golden("small-gpu.yaml"), "RayService"))
    service["spec"]["rayClusterConfig"]["workerGroupSpecs"][0]["maxReplicas"] = 2
    (problem,) = ray_problems(service)
    assert "at max replicas (4)" in problem.reason


# Defect 2: one pod per replica, so a replica must fit one instance (Kubernetes schedules a pod
# on one node). TP8×PP2 on H100 needs two p5.48xlarge.
def test_a_replica_that_needs_two_nodes_is_refused_with_single_node_fixes() -> None:
    spec = load_spec(REFUSED / "llama-405b-fp8-h100-2-nodes.yaml")
    with pytest.raises(ConfigError) as err:
        prepare(spec, TABLE)
    text = str(err.value)
    assert "TP8×PP2 needs 16 h100 GPUs on 2 nodes" in text
    assert "accelerator h200 with count 8 and tensor_parallel 8" in text  # corral plan's rows
    assert "accelerator h100 with count 8 and tensor_parallel 8" in text
    assert "nvidia.com/gpu 16 > 8" in text


# Defect 3: vLLM refuses bf16 below compute capability 8.0 (vllm/platforms/cuda.py,
# check_if_supports_dtype).
def test_t4_renders_float16_and_refuses_explicit_bfloat16() -> None:
    service = of_kind(golden("qwen-t4.yaml"), "RayService")
    kwargs = yaml.safe_load(service["spec"]["serveConfigV2"])["applications"][0]["args"]
    assert kwargs["llm_configs"][0]["engine_kwargs"]["dtype"] == "float16"
    with pytest.raises(ConfigError, match="vLLM refuses bfloat16 on t4"):
        prepare(load_spec(REFUSED / "qwen-t4-bf16.yaml"), TABLE)


def test_l4_renders_bfloat16() -> None:
    service = of_kind(golden("small-gpu.yaml"), "RayService")
    kwargs = yaml.safe_load(service["spec"]["serveConfigV2"])["applications"][0]["args"]
    assert kwargs["llm_configs"][0]["engine_kwargs"]["dtype"] == "bfloat16"


# Defect 5: Karpenter consolidates only empty GPU nodes and never a node with a
# karpenter.sh/do-not-disrupt pod; the eviction API refuses when currentHealthy - 1 <
# desiredHealthy (kubernetes pkg/controller/disruption/disruption.go).
def _disruptions_allowed(pdb: dict[str, Any], healthy: int, expected: int) -> int:
    spec = pdb["spec"]
    if "minAvailable" in spec:
        desired = int(spec["minAvailable"])
    else:
        desired = expected - int(spec["maxUnavailable"])
    return max(0, healthy - desired)


@pytest.mark.parametrize("name", [p.name for p in SPECS])
def test_no_voluntary_eviction_of_the_last_ready_replica(name: str) -> None:
    objs = golden(name)
    pdb = of_kind(objs, "PodDisruptionBudget")
    spec = load_spec(FIXTURES / "specs" / name)
    replicas, nodes = spec.replicas, spec.accelerator.nodes
    # The workload controller expects between max(1, min) and max replicas of `nodes` pods each;
    # losing any pod of the last replica loses that replica.
    for expected in range(max(1, replicas.min), replicas.max + 1):
        assert _disruptions_allowed(pdb, healthy=nodes, expected=expected * nodes) == 0
        assert _disruptions_allowed(pdb, healthy=2 * nodes, expected=expected * nodes) <= nodes
    if any(o["kind"] == "RayService" for o in objs):
        # RayCluster has no /scale subresource: only an integer minAvailable works.
        assert pdb["spec"] == {**pdb["spec"], "minAvailable": nodes}


@pytest.mark.parametrize("name", [p.name for p in SPECS])
def test_gpu_pools_consolidate_when_empty_and_replicas_are_not_disrupted(name: str) -> None:
    objs = golden(name)
    for pool in (o for o in objs if o["kind"] == "NodePool"):
        assert pool["spec"]["disruption"]["consolidationPolicy"] == "WhenEmpty"
    templates = [
        g["template"]
        for o in objs
        if o["kind"] == "RayService"
        for g in o["spec"]["rayClusterConfig"]["workerGroupSpecs"]
    ] + [o["spec"]["template"] for o in objs if o["kind"] == "Deployment"]
    for template in templates:
        assert template["metadata"]["annotations"]["karpenter.sh/do-not-disrupt"] == "true"


# Defect 4: disk from weights × replicas per node + images; NVMe RAID0 where the instance has
# instance storage (Karpenter EC2NodeClass instanceStorePolicy); Bottlerocket data on /dev/xvdb.
def test_nvme_instances_get_raid0_and_a_shared_model_cache() -> None:
    objs = golden("small-gpu.yaml")
    node_class = of_kind(objs, "EC2NodeClass")["spec"]
    assert node_class["instanceStorePolicy"] == "RAID0"
    worker = of_kind(objs, "RayService")["spec"]["rayClusterConfig"]["workerGroupSpecs"][0]
    volumes = {v["name"]: v for v in worker["template"]["spec"]["volumes"]}
    assert volumes["model-cache"]["hostPath"]["path"].startswith("/mnt/k8s-disks/0/")


def test_bottlerocket_puts_data_on_xvdb_and_keeps_xvda_small() -> None:
    node_class = of_kind(golden("bottlerocket-a10g.yaml"), "EC2NodeClass")["spec"]
    devices = {m["deviceName"]: m["ebs"]["volumeSize"] for m in node_class["blockDeviceMappings"]}
    assert devices["/dev/xvda"] == "4Gi"
    assert int(devices["/dev/xvdb"].removesuffix("Gi")) >= 100
    assert "instanceStorePolicy" not in node_class


def test_bottlerocket_data_on_xvda_is_refused() -> None:
    spec = size_to_plan(load_spec(FIXTURES / "specs" / "bottlerocket-a10g.yaml"), TABLE).spec
    objs = golden("bottlerocket-a10g.yaml")
    node_class = of_kind(objs, "EC2NodeClass")["spec"]
    node_class["blockDeviceMappings"] = [
        node_class["blockDeviceMappings"][1] | {"deviceName": "/dev/xvda"}
    ]
    problems = check_feasibility(spec, objs, TABLE).problems
    assert problems
    assert all(p.rule == "disk" and "/dev/xvdb" in p.fix for p in problems)


def test_a_volume_too_small_for_the_weights_is_refused() -> None:
    with pytest.raises(ConfigError, match="needs 245Gi") as err:
        prepare(load_spec(REFUSED / "small-root-volume.yaml"), TABLE)
    assert "root_volume_gib" in str(err.value)


def test_s3_copies_request_ephemeral_storage_for_their_weights() -> None:
    objs = golden("qwen-32b-s3.yaml")
    worker = of_kind(objs, "RayService")["spec"]["rayClusterConfig"]["workerGroupSpecs"][0]
    requests = worker["template"]["spec"]["containers"][0]["resources"]["requests"]
    assert int(requests["ephemeral-storage"].removesuffix("Gi")) > 66  # 32.8B × 2 B


# Pod fit: tolerations and selectors against the NodePool (Kubernetes ToleratesTaint).
def test_a_pod_without_the_gpu_toleration_does_not_fit() -> None:
    spec = size_to_plan(load_spec(FIXTURES / "specs" / "small-gpu.yaml"), TABLE).spec
    objs = golden("small-gpu.yaml")
    worker = of_kind(objs, "RayService")["spec"]["rayClusterConfig"]["workerGroupSpecs"][0]
    worker["template"]["spec"]["tolerations"] = []
    worker["template"]["spec"]["nodeSelector"]["corral.dev/accelerator"] = "h100"
    reasons = [p.reason for p in check_feasibility(spec, objs, TABLE).problems]
    assert any("does not tolerate taint nvidia.com/gpu:NoSchedule" in r for r in reasons)
    assert any("nodeSelector corral.dev/accelerator=h100" in r for r in reasons)


def test_tolerations_follow_kubernetes_rules() -> None:
    taint = {"key": "nvidia.com/gpu", "effect": "NoSchedule"}
    assert tolerates([{"key": "nvidia.com/gpu", "operator": "Exists"}], taint)
    assert tolerates([{"operator": "Exists"}], taint)
    assert not tolerates(
        [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoExecute"}], taint
    )
    assert not tolerates([{"key": "aws.amazon.com/neuron", "operator": "Exists"}], taint)


def test_a_pod_bigger_than_the_instance_is_refused() -> None:
    spec = size_to_plan(load_spec(FIXTURES / "specs" / "small-gpu.yaml"), TABLE).spec
    objs = golden("small-gpu.yaml")
    worker = of_kind(objs, "RayService")["spec"]["rayClusterConfig"]["workerGroupSpecs"][0]
    worker["template"]["spec"]["containers"][0]["resources"]["requests"]["memory"] = "800Gi"
    (problem,) = check_feasibility(spec, objs, TABLE).problems
    assert problem.rule == "pod-fit"
    assert "memory 800.0Gi" in problem.reason


# Defect 10: deploy renders what the plan sized (same concurrency), and says when a spec overrides.
def test_deploy_renders_the_plans_devices_for_the_8b_on_l4_example() -> None:
    from corral.control.planner.plan import plan

    spec = load_spec(FIXTURES / "specs" / "small-gpu.yaml")
    row = next(o.option for o in plan(spec, table=TABLE).options if o.option.accelerator == "l4")
    prepared = prepare(spec, TABLE)
    service = of_kind(prepared.manifests, "RayService")
    kwargs = yaml.safe_load(service["spec"]["serveConfigV2"])["applications"][0]["args"]
    engine = kwargs["llm_configs"][0]["engine_kwargs"]
    assert (engine["tensor_parallel_size"], engine["max_num_seqs"]) == (row.tensor_parallel, 16)
    worker = service["spec"]["rayClusterConfig"]["workerGroupSpecs"][0]
    limits = worker["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert limits["nvidia.com/gpu"] == str(row.devices) == "2"
    assert any(n.startswith("sized to the plan: 2× l4") for n in prepared.notes)


def test_an_explicit_spec_that_overrides_the_plan_is_reported() -> None:
    spec = load_spec(FIXTURES / "specs" / "llama-70b-h100.yaml")
    notes = prepare(spec, TABLE).notes
    assert any(n.startswith("the spec overrides the plan: 4× h100") for n in notes)
    assert any("KV cache holds 27 of max_num_seqs 32" in n for n in notes)


def test_a_cpu_rayservice_asks_ray_for_no_gpu() -> None:
    # Without explicit bundles Ray Serve LLM would ask for {GPU: 1}, which no CPU worker offers.
    spec = load_spec(FIXTURES / "specs" / "cpu-dev.yaml").model_copy(
        update={
            "engine": load_spec(FIXTURES / "specs" / "cpu-dev.yaml").engine.model_copy(
                update={"runtime": "rayservice"}
            )
        }
    )
    prepared = prepare(spec, TABLE)
    service = of_kind(prepared.manifests, "RayService")
    (llm,) = yaml.safe_load(service["spec"]["serveConfigV2"])["applications"][0]["args"][
        "llm_configs"
    ]
    assert (
        ray_module(SERVE_LLM_ACCELERATORS).infer_hardware_kind_from_bundles(
            llm["placement_group_config"]
        )
        == "cpu"
    )
    assert prepared.feasibility.ok


EXAMPLES = sorted((Path(__file__).parents[3] / "examples" / "deployments").glob("*.yaml"))


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_specs_deploy(path: Path) -> None:
    prepared = prepare(load_spec(path), TABLE)
    assert prepared.feasibility.ok

"""The feasibility check ``corral deploy`` and ``corral plan`` run before anything is applied."""

from __future__ import annotations

from typing import Any

from corral.control.feasibility import pods
from corral.control.feasibility.binpack import place
from corral.control.feasibility.engine import engine_problems
from corral.control.feasibility.groups import group_problems, groups
from corral.control.feasibility.node_disk import (
    NODE_CLASS_KINDS,
    data_disk_gib,
    disk_problems,
    node_class_spec,
)
from corral.control.feasibility.ray_cluster import NodeType, node_types, replica_shapes
from corral.control.feasibility.report import FeasibilityReport, Problem
from corral.control.planner.instances import PriceTable
from corral.control.spec import DeploymentSpec
from corral.errors import ConfigError
from corral.kube.port import Manifest


def check_feasibility(
    spec: DeploymentSpec, objs: list[Manifest], table: PriceTable
) -> FeasibilityReport:
    """Engine rules, Ray's autoscaler over the RayService, pods against their NodePools' instance
    types, and node disk; every problem names its fix."""
    problems, notes = engine_problems(spec, table)
    checked = ["engine arguments"]
    for obj in objs:
        if obj["kind"] == "RayService":
            problems += ray_problems(obj)
            checked.append("Ray autoscaler placement at min, max and from zero")
    pools = {o["metadata"]["name"]: o for o in objs if o["kind"] == "NodePool"}
    if pools:
        problems += pod_problems(objs, pools, table)
        checked.append("pods against NodePool instance types")
    if groups(objs):
        problems += group_problems(objs)
        checked.append("multi-node groups (devices, EFA, one zone, NodePool limit)")
    classes = [o for o in objs if o["kind"] in NODE_CLASS_KINDS]
    for node_class in classes:
        problems += disk_problems(spec, node_class, table)
    if classes:
        checked.append("node disk")
    return FeasibilityReport(problems, checked, notes)


def ensure_feasible(
    spec: DeploymentSpec, objs: list[Manifest], table: PriceTable
) -> FeasibilityReport:
    """The report, or ConfigError listing each problem with its fix."""
    report = check_feasibility(spec, objs, table)
    if not report.ok:
        lines = "\n  ".join(str(p) for p in report.problems)
        raise ConfigError(f"{spec.name} cannot run as specified:\n  {lines}")
    return report


def ray_problems(ray_service: Manifest) -> list[Problem]:
    """Each Serve replica's bundles placed on the autoscaler's node types: at min replicas, at
    max replicas, and one replica from zero workers."""
    types = node_types(ray_service)
    out = []
    for shape in replica_shapes(ray_service):
        cases = [("max", shape.max_replicas, False), ("zero", 1, True)]
        if shape.min_replicas:
            cases.insert(0, ("min", shape.min_replicas, False))
        for label, count, from_zero in cases:
            placed = place(types, shape, count, from_zero=from_zero)
            if not placed.ok:
                when = "scaling from zero" if from_zero else f"at {label} replicas ({count})"
                out.append(_unplaced(ray_service, when, placed.unplaced, types))
                break
    return out


def _unplaced(
    ray_service: Manifest, when: str, bundle: dict[str, float] | None, types: list[NodeType]
) -> Problem:
    offers = "; ".join(f"{t.name} ×≤{t.max_workers} {t.resources}" for t in types)
    return Problem(
        "ray-autoscaler",
        f"RayService/{ray_service['metadata']['name']}: Ray's autoscaler cannot place a replica "
        f"{when}: {bundle} fits no node it may start ({offers}) "
        "(ray autoscaler/_private/kuberay/autoscaling_config.py)",
        "make the worker group advertise every resource the replica's bundles ask for "
        "(rayStartParams.resources) and allow maxReplicas nodes for max replicas",
    )


def pod_problems(
    objs: list[Manifest], pools: dict[str, Manifest], table: PriceTable
) -> list[Problem]:
    """Each accelerator pod against its NodePool: selectors, taints, and at least one instance
    type whose allocatable covers its requests."""
    disk = node_class_spec(objs)
    out: list[Problem] = []
    for template in pods.pod_templates(objs):
        selector = template.spec["spec"].get("nodeSelector", {})
        pool = pools.get(selector.get(pods.NODEPOOL_LABEL, ""))
        if pool is None:
            continue
        out += pods.selector_problems(template.where, template.spec, pool)
        out += pods.taint_problems(template.where, template.spec, pool)
        out += _fit_problems(template, pool, table, disk)
    return out


def _fit_problems(
    template: pods.PodTemplate,
    pool: Manifest,
    table: PriceTable,
    disk: dict[str, Any] | None,
) -> list[Problem]:
    requests = pods.pod_requests(template.spec)
    hosts = pods.nodepool_instances(pool, table)
    gaps = {
        i.name: pods.shortfall(requests, pods.allocatable(i, data_disk_gib(disk, i))) for i in hosts
    }
    if not hosts or all(gaps.values()):
        detail = "; ".join(f"{name}: {', '.join(g)}" for name, g in gaps.items()) or "none"
        return [
            Problem(
                "pod-fit",
                f"{template.where}: no instance type NodePool {pool['metadata']['name']} allows "
                f"fits the pod's requests ({detail})",
                "request less per pod or allow larger instance types",
            )
        ]
    return []

"""Everything one deployment spec renders to, in the order it must be applied."""

from __future__ import annotations

import yaml

from corral.control.planner.instances import PriceTable, load_price_table
from corral.control.render.autoscaling import render_hpa
from corral.control.render.deployment import render_deployment
from corral.control.render.karpenter import render_nodes
from corral.control.render.leader_worker_set import render_leader_worker_set
from corral.control.render.monitoring import render_monitors
from corral.control.render.network import (
    render_namespace,
    render_network_policy,
    render_pdb,
    render_service,
    render_service_account,
    render_weights_volume,
)
from corral.control.render.rayservice import render_rayservice
from corral.control.spec import DeploymentSpec
from corral.kube.port import Manifest, Manifests


def render(spec: DeploymentSpec, table: PriceTable | None = None) -> Manifests:
    """The manifests for ``spec``: namespace and identity, nodes, storage, workload, networking."""
    table = table or load_price_table()
    workload = _workload(spec, table)
    return [
        render_namespace(spec),
        render_service_account(spec),
        *render_nodes(spec, table),
        *render_weights_volume(spec),
        workload,
        *render_hpa(spec),
        render_service(spec),
        render_pdb(spec),
        render_network_policy(spec),
        *render_monitors(spec),
    ]


def _workload(spec: DeploymentSpec, table: PriceTable) -> Manifest:
    if spec.engine.runtime == "rayservice":
        return render_rayservice(spec, table)
    if spec.accelerator.nodes > 1:
        return render_leader_worker_set(spec, table)
    return render_deployment(spec, table)


def external_references(spec: DeploymentSpec) -> list[str]:
    """Objects the manifests use but Corral does not render for this deployment.

    The PriorityClasses ship with the platform's Kustomize base; the Hugging Face token Secret
    and a ``pvc://`` claim belong to the user.
    """
    refs = [f"PriorityClass/corral-{spec.priority}"]
    if spec.model.hf_token_secret:
        refs.append(f"Secret/{spec.namespace}/{spec.model.hf_token_secret}")
    if spec.model.kind == "pvc":
        claim = spec.model.source.removeprefix("pvc://").split("/", 1)[0]
        refs.append(f"PersistentVolumeClaim/{spec.namespace}/{claim}")
    return refs


class _ManifestDumper(yaml.SafeDumper):
    """Plain YAML: no anchors, multi-line strings (serveConfigV2) as literal blocks."""

    def ignore_aliases(self, data: object) -> bool:
        return True


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_ManifestDumper.add_representer(str, _str)


def dump_manifests(objs: Manifests) -> str:
    """The manifests as one multi-document YAML stream (what ``--dry-run`` prints)."""
    return yaml.dump_all(
        objs, Dumper=_ManifestDumper, sort_keys=False, default_flow_style=False, width=100
    )

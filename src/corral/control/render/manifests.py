"""Everything one deployment spec renders to, in the order it must be applied."""

from __future__ import annotations

from corral.control.planner.instances import PriceTable, load_price_table
from corral.control.render.deployment import render_deployment
from corral.control.render.karpenter import render_nodes
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
from corral.kube.port import Manifests


def render(spec: DeploymentSpec, table: PriceTable | None = None) -> Manifests:
    """The manifests for ``spec``: namespace and identity, nodes, storage, workload, networking."""
    table = table or load_price_table()
    workload = (
        render_deployment(spec, table)
        if spec.engine.runtime == "deployment"
        else render_rayservice(spec, table)
    )
    return [
        render_namespace(spec),
        render_service_account(spec),
        *render_nodes(spec),
        *render_weights_volume(spec),
        workload,
        render_service(spec),
        render_pdb(spec),
        render_network_policy(spec),
        *render_monitors(spec),
    ]

"""The EKS node monitoring agent as a health source: the node conditions it sets, read from the
Node object, mapped onto the same policy table as NVML, Xid, DCGM and Neuron findings.

The agent (EKS add-on ``eks-node-monitoring-agent``) sets four conditions on a node and, when
node auto repair is enabled on the node group or Auto Mode, EKS reboots or replaces a node whose
condition stays False (EKS user guide, "Detect node health issues and enable automatic node
repair"). Reasons name the fault: ``NvidiaXID<code>Error`` carries the Xid code, which goes
through the Xid rows of ``policy``; the others are mapped in ``ACCELERATED_REASONS``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from corral.health.observations import NodeCondition, Observation
from corral.kube.port import KubeClient

SOURCE = "eks-node-monitoring-agent"
ACCELERATED_HARDWARE = "AcceleratedHardwareReady"
KERNEL = "KernelReady"
NETWORKING = "NetworkingReady"
STORAGE = "StorageReady"
CONDITIONS = (ACCELERATED_HARDWARE, KERNEL, NETWORKING, STORAGE)
"""The condition types the EKS node monitoring agent sets (same EKS user guide page)."""
XID_REASON = re.compile(r"^NvidiaXID(\d+)Error$")
"""AcceleratedHardwareReady reasons for an Xid, e.g. NvidiaXID79Error (same page, NVIDIA table)."""


def conditions_of(node: Mapping[str, Any]) -> Observation:
    """The EKS agent's conditions on ``node`` (a Node manifest), as an observation."""
    found = tuple(
        NodeCondition(
            str(c.get("type")),
            str(c.get("status", "Unknown")),
            str(c.get("reason", "")),
            str(c.get("message", "")),
        )
        for c in node.get("status", {}).get("conditions", [])
        if c.get("type") in CONDITIONS
    )
    problems = () if found else ("no EKS node monitoring agent conditions on this node",)
    return Observation(node_conditions=found, problems=problems, sources=(SOURCE,))


def xid_of(reason: str) -> int | None:
    """The Xid code an AcceleratedHardwareReady reason names, if it names one."""
    match = XID_REASON.match(reason)
    return int(match.group(1)) if match else None


async def read_conditions(kube: KubeClient, node: str) -> Observation:
    """The node's EKS conditions through the KubeClient port (the agent already may get nodes)."""
    obj = await kube.get("v1", "Node", node)
    if obj is None:
        return Observation(problems=(f"node {node} not found",), sources=(SOURCE,))
    return conditions_of(obj)

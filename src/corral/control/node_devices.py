"""Whether an accelerator node offers its devices to pods, and if not, the likely reason.

A node's devices become schedulable only when a device plugin advertises them
(``status.capacity``) and reports them healthy (``status.allocatable``). Pure functions over the
Node and the device-plugin pods on it; ``corral status`` reads both through the KubeClient port.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from corral.control.accelerators import ACCELERATORS
from corral.control.feasibility.quantities import parse_quantity
from corral.control.planner.instances import InstanceType, PriceTable

ACCELERATOR_LABEL = "corral.dev/accelerator"
INSTANCE_TYPE_LABEL = "node.kubernetes.io/instance-type"
AUTO_MODE_LABEL = "eks.amazonaws.com/compute-type"
AMI_FAMILY_LABEL = "corral.dev/ami-family"
DEVICE_PLUGINS = {
    "nvidia": "nvidia-device-plugin",
    "neuron": "neuron-device-plugin",
}
"""``app.kubernetes.io/name`` of each vendor's plugin pods (deploy/kustomize/components/
accelerators)."""


@dataclass(frozen=True, slots=True)
class NodeDevices:
    """What a node should offer, what it offers, and why not when it falls short."""

    accelerator: str
    resource: str
    expected: int
    """Devices the instance type carries (0 when the type is unknown)."""
    advertised: int
    """``status.capacity``: devices a plugin registered."""
    allocatable: int
    """``status.allocatable``: devices pods can get (healthy ones)."""
    problem: str
    """Empty when all devices are allocatable."""


def expected_device(node: Mapping[str, Any], table: PriceTable) -> InstanceType | None:
    """The node's instance type when it carries accelerators (from the instance table)."""
    labels = node.get("metadata", {}).get("labels", {})
    name = labels.get(INSTANCE_TYPE_LABEL)
    found = next((i for i in table.instances if i.name == name), None)
    if found is None or ACCELERATORS[found.accelerator].vendor == "cpu":
        return None
    return found


def node_devices(
    node: Mapping[str, Any], instance: InstanceType, plugin_running: bool
) -> NodeDevices:
    """The node's devices against its instance type; ``plugin_running``: a device-plugin pod of
    the vendor is running on the node."""
    device = ACCELERATORS[instance.accelerator]
    assert device.resource is not None  # expected_device excludes CPU instances
    status = node.get("status", {})
    advertised = _count(status.get("capacity", {}), device.resource)
    allocatable = _count(status.get("allocatable", {}), device.resource)
    labels = node.get("metadata", {}).get("labels", {})
    problem = _diagnose(device.vendor, device.resource, instance, advertised, allocatable)
    if problem and advertised == 0:
        problem = _no_devices(device.vendor, device.resource, labels, plugin_running)
    return NodeDevices(
        instance.accelerator, device.resource, instance.count, advertised, allocatable, problem
    )


def _count(amounts: Mapping[str, Any], resource: str) -> int:
    return int(parse_quantity(amounts.get(resource, 0)))


def _diagnose(
    vendor: str, resource: str, instance: InstanceType, advertised: int, allocatable: int
) -> str:
    if advertised == 0:
        return "no devices"
    if allocatable < advertised:
        return (
            f"{advertised - allocatable} of {advertised} {resource} unhealthy: the device plugin "
            "withdrew them (Xid/ECC or a lost device); see corral health and the plugin's log"
        )
    if advertised < instance.count:
        return (
            f"only {advertised} of {instance.count} {resource} advertised: a device failed to "
            f"initialise or the driver does not see it ({_driver_check(vendor)})"
        )
    return ""


def _no_devices(vendor: str, resource: str, labels: Mapping[str, str], plugin: bool) -> str:
    if plugin:
        return (
            f"the {DEVICE_PLUGINS[vendor]} runs but advertises no {resource}: the driver is "
            f"not loaded or the AMI is not an accelerated one ({_driver_check(vendor)})"
        )
    if labels.get(AUTO_MODE_LABEL) == "auto":
        return (
            f"EKS Auto Mode has not advertised {resource} yet: its device plugin starts with "
            "the node; if this lasts, the node is unhealthy (EKS node monitoring agent)"
        )
    if vendor == "nvidia" and labels.get(AMI_FAMILY_LABEL) == "bottlerocket":
        return (
            f"Bottlerocket's built-in NVIDIA device plugin advertises no {resource}: use an "
            "NVIDIA Bottlerocket variant (aws-k8s-*-nvidia)"
        )
    return (
        f"no device plugin advertises {resource}: apply the accelerators component "
        f"(deploy/kustomize/components/accelerators) or check why {DEVICE_PLUGINS[vendor]} "
        "is not running on this node"
    )


def _driver_check(vendor: str) -> str:
    return "run nvidia-smi on the node" if vendor == "nvidia" else "run neuron-ls on the node"

"""What the GPU probes saw on one node, as plain frozen data the policy reads."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum


class Throttle(StrEnum):
    """Clock-event (throttle) reasons that point at hardware, not at a user's settings."""

    HW_SLOWDOWN = "hw_slowdown"
    HW_THERMAL = "hw_thermal"
    SW_THERMAL = "sw_thermal"
    POWER_BRAKE = "power_brake"


class NeuronErrorKind(StrEnum):
    """Neuron error families that mean the device itself is failing."""

    HARDWARE = "hardware"
    HBM_UNCORRECTABLE = "hbm_uncorrectable"
    SRAM_UNCORRECTABLE = "sram_uncorrectable"


@dataclass(frozen=True, slots=True)
class DeviceReading:
    """One NVIDIA GPU as NVML reported it; a field is None when the GPU does not support it."""

    index: int
    uuid: str = ""
    name: str = ""
    pci_bus_id: str = ""
    lost: bool = False
    ecc_uncorrected: int | None = None
    ecc_corrected: int | None = None
    remap_pending: bool = False
    remap_failed: bool = False
    retired_pages_dbe: int | None = None
    retired_pages_pending: bool = False
    throttles: frozenset[Throttle] = frozenset()
    temperature_c: float | None = None
    power_w: float | None = None


@dataclass(frozen=True, slots=True)
class XidEvent:
    """One Xid the NVIDIA driver reported (from the kernel log or NVML's event set).

    ``workload`` names what was running when it happened (the pod UID of the process the driver
    named); None when the process could not be traced to a pod.
    """

    code: int
    pci_bus_id: str = ""
    pid: int | None = None
    process: str = ""
    workload: str | None = None
    message: str = ""
    source: str = "kernel-log"


@dataclass(frozen=True, slots=True)
class NeuronError:
    """A non-zero Neuron hardware error counter for one device (or the runtime, device -1)."""

    device: int
    kind: NeuronErrorKind
    count: int


@dataclass(frozen=True, slots=True)
class DcgmIncident:
    """One incident from ``dcgmi health --check`` (severity ``Warning`` or ``Failure``)."""

    gpu: int | None
    system: str
    severity: str
    message: str


@dataclass(frozen=True, slots=True)
class NodeCondition:
    """A node condition another agent set (the EKS node monitoring agent's), as read from the
    Node: its type, ``True``/``False``/``Unknown``, and the reason and message it gave."""

    type: str
    status: str
    reason: str = ""
    message: str = ""


@dataclass(frozen=True, slots=True)
class Observation:
    """Everything one probe round saw on a node. Probes fill the parts they know.

    ``expected_devices`` is what the node should have (from its instance type or settings);
    ``device_count`` is what the driver enumerated (None when this probe does not count).
    ``problems`` are reasons a probe could not read something; they are shown, never acted on.
    """

    accelerator: str = "nvidia"
    expected_devices: int | None = None
    device_count: int | None = None
    devices: tuple[DeviceReading, ...] = ()
    xids: tuple[XidEvent, ...] = ()
    neuron_errors: tuple[NeuronError, ...] = ()
    dcgm: tuple[DcgmIncident, ...] = ()
    node_conditions: tuple[NodeCondition, ...] = ()
    problems: tuple[str, ...] = ()
    sources: tuple[str, ...] = field(default=())


def merge(parts: Iterable[Observation]) -> Observation:
    """One observation from several probes' partial ones (later counts win, lists concatenate)."""
    result = Observation()
    for part in parts:
        result = Observation(
            accelerator=part.accelerator if part.sources else result.accelerator,
            expected_devices=_last(result.expected_devices, part.expected_devices),
            device_count=_last(result.device_count, part.device_count),
            devices=result.devices + part.devices,
            xids=result.xids + part.xids,
            neuron_errors=result.neuron_errors + part.neuron_errors,
            dcgm=result.dcgm + part.dcgm,
            node_conditions=result.node_conditions + part.node_conditions,
            problems=result.problems + part.problems,
            sources=result.sources + part.sources,
        )
    return result


def _last(current: int | None, new: int | None) -> int | None:
    return new if new is not None else current

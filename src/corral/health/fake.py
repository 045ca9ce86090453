"""Fakes for GPU health: fixture-driven NVML and probes, and an ejector, resetter and audit sink."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import yaml

from corral.errors import CorralError
from corral.health.dcgm import DcgmProbe
from corral.health.eks_node_health import conditions_of
from corral.health.kernel_log import KernelLogProbe
from corral.health.neuron import NeuronMonitorProbe
from corral.health.nvml import NvmlProbe
from corral.health.observations import Observation
from corral.health.port import AuditEntry, CombinedProbe, GpuProbe

_THROTTLE_BITS = {"hw_slowdown": 0x8, "sw_thermal": 0x20, "hw_thermal": 0x40, "power_brake": 0x80}
_INIT_ERRORS = {"driver_not_loaded": 9, "library_not_found": 12}


class FakeNvmlError(Exception):
    """Stands in for ``pynvml.NVMLError``: carries the NVML return code in ``value``."""

    def __init__(self, value: int) -> None:
        super().__init__(f"NVML error {value}")
        self.value = value


class FakeNvmlLibrary:
    """Answers the NVML calls NvmlProbe makes from an NVML-state fixture.

    ``module()`` is the stand-in for the ``pynvml`` module. Fixture shape (JSON):
    ``{"devices": [{"name", "uuid", "pci_bus_id", "lost", "ecc_volatile": {"uncorrected",
    "corrected"}, "remapped_rows": {"pending", "failure"}, "retired_pages_dbe",
    "retired_pages_pending", "clocks_event_reasons": ["hw_slowdown", ...], "temperature_c",
    "power_mw", "not_supported": ["remapped_rows", ...]}], "xid_events": [{"device", "xid"}],
    "init_error": "driver_not_loaded" | null}``. Handles are ``index + 1``.
    """

    NOT_SUPPORTED = 3
    TIMEOUT = 10
    GPU_IS_LOST = 15
    XID_EVENT = 0x8

    def __init__(self, state: dict[str, Any]) -> None:
        self.state = state
        self.calls: list[str] = []
        self._pending = list(state.get("xid_events") or [])

    def module(self) -> SimpleNamespace:
        """The pynvml names NvmlProbe uses, bound to this fixture (constants as in pynvml)."""
        return SimpleNamespace(
            NVMLError=FakeNvmlError,
            NVML_ERROR_NOT_SUPPORTED=self.NOT_SUPPORTED,
            NVML_ERROR_TIMEOUT=self.TIMEOUT,
            NVML_ERROR_FUNCTION_NOT_FOUND=13,
            NVML_ERROR_GPU_IS_LOST=self.GPU_IS_LOST,
            NVML_FEATURE_ENABLED=1,
            NVML_TEMPERATURE_GPU=0,
            NVML_VOLATILE_ECC=0,
            NVML_MEMORY_ERROR_TYPE_CORRECTED=0,
            NVML_MEMORY_ERROR_TYPE_UNCORRECTED=1,
            NVML_PAGE_RETIREMENT_CAUSE_DOUBLE_BIT_ECC_ERROR=1,
            nvmlEventTypeXidCriticalError=self.XID_EVENT,
            nvmlClocksThrottleReasonHwSlowdown=_THROTTLE_BITS["hw_slowdown"],
            nvmlClocksThrottleReasonSwThermalSlowdown=_THROTTLE_BITS["sw_thermal"],
            nvmlClocksThrottleReasonHwThermalSlowdown=_THROTTLE_BITS["hw_thermal"],
            nvmlClocksThrottleReasonHwPowerBrakeSlowdown=_THROTTLE_BITS["power_brake"],
            nvmlInit=self.init,
            nvmlShutdown=lambda: self.calls.append("nvmlShutdown"),
            nvmlSystemGetDriverVersion=lambda: str(self.state.get("driver_version", "550.54.15")),
            nvmlDeviceGetCount=lambda: len(self.state["devices"]),
            nvmlDeviceGetHandleByIndex=lambda index: index + 1,
            nvmlDeviceGetPciInfo=self.pci_info,
            nvmlDeviceGetUUID=lambda h: str(self.device(h).get("uuid", f"GPU-fake-{h}")),
            nvmlDeviceGetName=lambda h: str(self.device(h).get("name", "NVIDIA H100 80GB HBM3")),
            nvmlDeviceGetTotalEccErrors=self.ecc,
            nvmlDeviceGetRemappedRows=self.remapped_rows,
            nvmlDeviceGetRetiredPages=self.retired_pages,
            nvmlDeviceGetRetiredPagesPendingStatus=self.retired_pending,
            nvmlDeviceGetPowerUsage=lambda h: int(self.device(h, "power").get("power_mw", 70_000)),
            nvmlDeviceGetTemperature=self.temperature,
            nvmlDeviceGetCurrentClocksEventReasons=self.clock_events,
            nvmlDeviceGetCurrentClocksThrottleReasons=self.clock_events,
            nvmlEventSetCreate=lambda: "event-set",
            nvmlDeviceRegisterEvents=lambda h, types, events: self.device(h, "xid_events"),
            nvmlEventSetWait_v2=self.wait_event,
            nvmlEventSetFree=lambda events: self.calls.append("nvmlEventSetFree"),
        )

    def device(self, handle: int, feature: str = "") -> dict[str, Any]:
        device: dict[str, Any] = self.state["devices"][handle - 1]
        if device.get("lost"):
            raise FakeNvmlError(self.GPU_IS_LOST)
        if feature and feature in device.get("not_supported", ()):
            raise FakeNvmlError(self.NOT_SUPPORTED)
        return device

    def init(self) -> None:
        self.calls.append("nvmlInit")
        error = self.state.get("init_error")
        if error:
            raise FakeNvmlError(_INIT_ERRORS.get(error, 999))

    def pci_info(self, handle: int) -> SimpleNamespace:
        bus_id = self.device(handle).get("pci_bus_id", f"00000000:{handle:02X}:00.0")
        return SimpleNamespace(busId=bus_id)

    def ecc(self, handle: int, kind: int, counter: int) -> int:
        ecc = self.device(handle, "ecc").get("ecc_volatile", {})
        return int(ecc.get("uncorrected" if kind == 1 else "corrected", 0))

    def remapped_rows(self, handle: int) -> tuple[int, int, int, int]:
        rows = self.device(handle, "remapped_rows").get("remapped_rows", {})
        return (0, 0, int(bool(rows.get("pending"))), int(bool(rows.get("failure"))))

    def retired_pages(self, handle: int, cause: int) -> list[int]:
        return list(range(int(self.device(handle, "retired_pages").get("retired_pages_dbe", 0))))

    def retired_pending(self, handle: int) -> int:
        return int(bool(self.device(handle, "retired_pages").get("retired_pages_pending")))

    def temperature(self, handle: int, sensor: int) -> int:
        return int(self.device(handle, "temperature").get("temperature_c", 40))

    def clock_events(self, handle: int) -> int:
        names = self.device(handle, "clocks_event_reasons").get("clocks_event_reasons", [])
        return sum(_THROTTLE_BITS[n] for n in names)

    def wait_event(self, events: str, timeout_ms: int) -> SimpleNamespace:
        if not self._pending:
            raise FakeNvmlError(self.TIMEOUT)
        event = self._pending.pop(0)
        return SimpleNamespace(
            device=int(event["device"]) + 1, eventType=self.XID_EVENT, eventData=event["xid"]
        )


class FakeGpuProbe:
    """A GpuProbe that answers from fixtures (through the real parsers) or scripted observations.

    ``from_fixtures`` reads any of: an NVML-state JSON file, kernel-log text, a neuron-monitor
    JSON report, ``dcgmi health --check`` text. ``script`` queues observations returned first.
    """

    def __init__(self, probe: GpuProbe | None = None) -> None:
        self._probe = probe
        self._script: list[Observation] = []
        self.rounds = 0

    @classmethod
    def from_fixtures(
        cls,
        *,
        nvml: Path | None = None,
        kernel_log: Path | None = None,
        neuron: Path | None = None,
        dcgm: Path | None = None,
        eks_node: Path | None = None,
        expected_devices: int | None = None,
    ) -> FakeGpuProbe:
        probes: list[GpuProbe] = []
        if eks_node is not None:
            probes.append(
                _NodeConditionsProbe(yaml.safe_load(eks_node.read_text(encoding="utf-8")))
            )
        if nvml is not None:
            state = json.loads(nvml.read_text(encoding="utf-8"))
            expected = expected_devices or state.get("expected_devices")
            probes.append(NvmlProbe(expected, library=FakeNvmlLibrary(state).module()))
        if kernel_log is not None:
            lines = kernel_log.read_text(encoding="utf-8").splitlines()
            probes.append(KernelLogProbe(lambda: lines))
        if neuron is not None:
            report = neuron.read_text(encoding="utf-8")
            probes.append(NeuronMonitorProbe(expected_devices, read=lambda: report))
        if dcgm is not None:
            text = dcgm.read_text(encoding="utf-8")
            probes.append(DcgmProbe(run=lambda: text))
        return cls(CombinedProbe(probes))

    def script(self, *observations: Observation) -> None:
        self._script.extend(observations)

    def observe(self) -> Observation:
        self.rounds += 1
        if self._script:
            return self._script.pop(0)
        return self._probe.observe() if self._probe is not None else Observation()


class _NodeConditionsProbe:
    """A recorded Node's EKS conditions, as the agent reads them through the KubeClient."""

    def __init__(self, node: dict[str, Any]) -> None:
        self._node = node

    def observe(self) -> Observation:
        return conditions_of(self._node)


class RecordingEjector:
    """An EndpointEjector that remembers which nodes are ejected and every call, in order."""

    def __init__(self, log: list[str] | None = None) -> None:
        self.ejected: set[str] = set()
        self.log = log if log is not None else []

    async def eject_node(self, node: str, reason: str) -> None:
        self.ejected.add(node)
        self.log.append(f"eject {node}")

    async def restore_node(self, node: str) -> None:
        self.ejected.discard(node)
        self.log.append(f"restore {node}")


class FakeResetter:
    """A NodeResetter that records resets and can be told to fail."""

    def __init__(self, error: CorralError | None = None) -> None:
        self.resets: list[tuple[str, tuple[int, ...]]] = []
        self.error = error

    async def reset(self, node: str, devices: tuple[int, ...]) -> None:
        self.resets.append((node, devices))
        if self.error is not None:
            raise self.error


class MemoryAuditSink:
    """An AuditSink keeping entries in a list."""

    def __init__(self) -> None:
        self.entries: list[AuditEntry] = []

    async def record(self, entry: AuditEntry) -> None:
        self.entries.append(entry)

    def actions(self) -> list[str]:
        return [e.action for e in self.entries]

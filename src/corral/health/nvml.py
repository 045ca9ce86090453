"""The NVML probe: per-GPU ECC, row remapping, retired pages, throttling and Xid events."""

from __future__ import annotations

import ctypes
from collections.abc import Callable
from typing import Any, TypeVar

from corral.errors import PermanentError
from corral.health.observations import DeviceReading, Observation, Throttle, XidEvent

T = TypeVar("T")

_INSTALL_HINT = (
    "install the NVIDIA driver on this machine and the gpu extra (pip install 'corral[gpu]'), "
    "or run where an NVIDIA GPU is visible (in Kubernetes: request nvidia.com/gpu or privileged)"
)


class _Lost(Exception):
    """The GPU answered NVML_ERROR_GPU_IS_LOST: it has fallen off the bus."""


def load_pynvml() -> Any:
    """The pynvml module, imported only when an NVML probe is used."""
    try:
        import pynvml
    except ImportError as exc:
        raise PermanentError(
            f"NVML is not available: nvidia-ml-py is not installed; {_INSTALL_HINT}"
        ) from exc
    return pynvml


class NvmlProbe:
    """A GpuProbe over NVML. ``library`` is the pynvml module (or a stand-in with its names)."""

    def __init__(self, expected_devices: int | None = None, library: Any | None = None) -> None:
        self._expected = expected_devices
        self._library = library
        self._nvml: Any = None
        self._events: Any = None
        self._pci_of: dict[int, str] = {}

    def open(self) -> None:
        """Initialise NVML; PermanentError saying why when there is no usable NVIDIA driver."""
        if self._nvml is not None:
            return
        nvml = self._library if self._library is not None else load_pynvml()
        try:
            nvml.nvmlInit()
        except nvml.NVMLError as exc:
            raise PermanentError(f"NVML is not available: {exc}; {_INSTALL_HINT}") from exc
        self._nvml = nvml

    def close(self) -> None:
        """Release the event set and shut NVML down; safe to call twice."""
        nvml, self._nvml = self._nvml, None
        if nvml is None:
            return
        try:
            if self._events is not None:
                nvml.nvmlEventSetFree(self._events)
            nvml.nvmlShutdown()
        except nvml.NVMLError:
            pass  # shutting down a driver that is already gone is not worth reporting
        self._events = None

    def driver_version(self) -> str:
        self.open()
        return str(self._nvml.nvmlSystemGetDriverVersion())

    def observe(self) -> Observation:
        self.open()
        nvml = self._nvml
        problems: list[str] = []
        try:
            count = int(nvml.nvmlDeviceGetCount())
        except nvml.NVMLError as exc:
            raise PermanentError(f"NVML could not count GPUs: {exc}; {_INSTALL_HINT}") from exc
        handles: list[Any] = []
        devices = [self._read(i, handles, problems) for i in range(count)]
        xids = self._drain_xids(handles, problems)
        return Observation(
            accelerator="nvidia",
            expected_devices=self._expected,
            device_count=count,
            devices=tuple(devices),
            xids=xids,
            problems=tuple(problems),
            sources=("nvml",),
        )

    def _read(self, index: int, handles: list[Any], problems: list[str]) -> DeviceReading:
        nvml = self._nvml
        try:
            handle = self._call(nvml.nvmlDeviceGetHandleByIndex, index)
            pci = _text(self._call(nvml.nvmlDeviceGetPciInfo, handle).busId)
            reading = self._read_handle(index, handle, pci, problems)
        except _Lost:
            return DeviceReading(index=index, lost=True)
        except nvml.NVMLError as exc:
            problems.append(f"gpu{index}: {exc}")
            return DeviceReading(index=index)
        handles.append(handle)
        self._pci_of[_key(handle)] = pci
        return reading

    def _read_handle(self, index: int, handle: Any, pci: str, problems: list[str]) -> DeviceReading:
        nvml = self._nvml

        def optional(fn: Callable[..., T], *args: Any) -> T | None:
            return self._optional(f"gpu{index}", problems, fn, *args)

        remap = optional(nvml.nvmlDeviceGetRemappedRows, handle)
        retired = optional(
            nvml.nvmlDeviceGetRetiredPages,
            handle,
            nvml.NVML_PAGE_RETIREMENT_CAUSE_DOUBLE_BIT_ECC_ERROR,
        )
        pending = optional(nvml.nvmlDeviceGetRetiredPagesPendingStatus, handle)
        power_mw = optional(nvml.nvmlDeviceGetPowerUsage, handle)
        temperature = optional(nvml.nvmlDeviceGetTemperature, handle, nvml.NVML_TEMPERATURE_GPU)
        return DeviceReading(
            index=index,
            uuid=_text(self._call(nvml.nvmlDeviceGetUUID, handle)),
            name=_text(self._call(nvml.nvmlDeviceGetName, handle)),
            pci_bus_id=pci,
            ecc_uncorrected=optional(self._ecc, handle, nvml.NVML_MEMORY_ERROR_TYPE_UNCORRECTED),
            ecc_corrected=optional(self._ecc, handle, nvml.NVML_MEMORY_ERROR_TYPE_CORRECTED),
            remap_pending=bool(remap and remap[2]),
            remap_failed=bool(remap and remap[3]),
            retired_pages_dbe=len(retired) if retired is not None else None,
            retired_pages_pending=pending == nvml.NVML_FEATURE_ENABLED,
            throttles=_throttles(nvml, optional(self._clock_events, handle) or 0),
            temperature_c=float(temperature) if temperature is not None else None,
            power_w=power_mw / 1000.0 if power_mw is not None else None,
        )

    def _ecc(self, handle: Any, error_type: int) -> int:
        nvml = self._nvml
        return int(nvml.nvmlDeviceGetTotalEccErrors(handle, error_type, nvml.NVML_VOLATILE_ECC))

    def _clock_events(self, handle: Any) -> int:
        nvml = self._nvml
        # Drivers before 535 only have the older name for the same bit field.
        read = getattr(nvml, "nvmlDeviceGetCurrentClocksEventReasons", None)
        try:
            return int((read or nvml.nvmlDeviceGetCurrentClocksThrottleReasons)(handle))
        except nvml.NVMLError as exc:
            if exc.value != nvml.NVML_ERROR_FUNCTION_NOT_FOUND:
                raise
            return int(nvml.nvmlDeviceGetCurrentClocksThrottleReasons(handle))

    def _drain_xids(self, handles: list[Any], problems: list[str]) -> tuple[XidEvent, ...]:
        """Xid events NVML queued since the last round (registered on first use)."""
        nvml = self._nvml
        try:
            if self._events is None:
                self._events = nvml.nvmlEventSetCreate()
                for handle in handles:
                    self._register(handle)
            return tuple(self._wait_events())
        except nvml.NVMLError as exc:
            problems.append(f"NVML Xid events: {exc}")
            return ()

    def _register(self, handle: Any) -> None:
        nvml = self._nvml
        try:
            nvml.nvmlDeviceRegisterEvents(handle, nvml.nvmlEventTypeXidCriticalError, self._events)
        except nvml.NVMLError as exc:
            if exc.value != nvml.NVML_ERROR_NOT_SUPPORTED:
                raise

    def _wait_events(self) -> list[XidEvent]:
        nvml = self._nvml
        events: list[XidEvent] = []
        while True:
            try:
                data = nvml.nvmlEventSetWait_v2(self._events, 0)
            except nvml.NVMLError as exc:
                if exc.value == nvml.NVML_ERROR_TIMEOUT:
                    return events
                raise
            if data.eventType & nvml.nvmlEventTypeXidCriticalError:
                pci = self._pci_of.get(_key(data.device), "")
                events.append(XidEvent(code=int(data.eventData), pci_bus_id=pci, source="nvml"))

    def _call(self, fn: Callable[..., T], *args: Any) -> T:
        try:
            return fn(*args)
        except self._nvml.NVMLError as exc:
            if exc.value == self._nvml.NVML_ERROR_GPU_IS_LOST:
                raise _Lost from exc
            raise

    def _optional(
        self, device: str, problems: list[str], fn: Callable[..., T], *args: Any
    ) -> T | None:
        """``fn(*args)``; None when the GPU does not support it or it failed (noted in problems)."""
        nvml = self._nvml
        try:
            return self._call(fn, *args)
        except nvml.NVMLError as exc:
            unsupported = (nvml.NVML_ERROR_NOT_SUPPORTED, nvml.NVML_ERROR_FUNCTION_NOT_FOUND)
            if exc.value not in unsupported:
                problems.append(f"{device}: {getattr(fn, '__name__', 'NVML call')}: {exc}")
            return None


def _throttles(nvml: Any, reasons: int) -> frozenset[Throttle]:
    bits = {
        Throttle.HW_SLOWDOWN: nvml.nvmlClocksThrottleReasonHwSlowdown,
        Throttle.HW_THERMAL: nvml.nvmlClocksThrottleReasonHwThermalSlowdown,
        Throttle.SW_THERMAL: nvml.nvmlClocksThrottleReasonSwThermalSlowdown,
        Throttle.POWER_BRAKE: nvml.nvmlClocksThrottleReasonHwPowerBrakeSlowdown,
    }
    return frozenset(reason for reason, bit in bits.items() if reasons & bit)


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _key(handle: Any) -> int:
    """A stable number for a device handle (a ctypes pointer in pynvml, anything in a stand-in)."""
    try:
        return int(ctypes.cast(handle, ctypes.c_void_p).value or 0)
    except (TypeError, ctypes.ArgumentError):
        return id(handle)

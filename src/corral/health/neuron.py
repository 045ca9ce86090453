"""The Neuron probe: hardware error counters and device count from ``neuron-monitor`` reports."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable, Mapping
from typing import Any

from corral.errors import TemporaryError
from corral.health.observations import NeuronError, NeuronErrorKind, Observation

# neuron_hw_counters fields per device that count uncorrectable errors.
_DEVICE_COUNTERS = {
    "mem_ecc_uncorrected": NeuronErrorKind.HBM_UNCORRECTABLE,
    "sram_ecc_uncorrected": NeuronErrorKind.SRAM_UNCORRECTABLE,
}


def parse_report(text: str, expected_devices: int | None = None) -> Observation:
    """One neuron-monitor report (a JSON document) as an observation."""
    try:
        report = json.loads(text)
    except json.JSONDecodeError as exc:
        raise TemporaryError(f"neuron-monitor printed something that is not JSON: {exc}") from exc
    if not isinstance(report, dict):
        raise TemporaryError("neuron-monitor printed JSON that is not a report object")
    hardware = _mapping(report.get("neuron_hardware_info"))
    count = hardware.get("neuron_device_count")
    problems = [f"neuron-monitor: {e}" for e in _errors(report)]
    return Observation(
        accelerator="neuron",
        expected_devices=expected_devices,
        device_count=int(count) if isinstance(count, int) else None,
        neuron_errors=(*_device_errors(report), *_runtime_errors(report)),
        problems=tuple(problems),
        sources=("neuron-monitor",),
    )


def _device_errors(report: Mapping[str, Any]) -> list[NeuronError]:
    counters = _mapping(_mapping(report.get("system_data")).get("neuron_hw_counters"))
    found: list[NeuronError] = []
    for device in counters.get("neuron_devices") or []:
        entry = _mapping(device)
        index = int(entry.get("neuron_device_index", -1))
        for field, kind in _DEVICE_COUNTERS.items():
            count = entry.get(field)
            if isinstance(count, int) and count > 0:
                found.append(NeuronError(index, kind, count))
    return found


def _runtime_errors(report: Mapping[str, Any]) -> list[NeuronError]:
    """Executions the Neuron runtime saw fail because of the hardware (device unknown: -1)."""
    total = 0
    for runtime in report.get("neuron_runtime_data") or []:
        groups = _mapping(_mapping(runtime).get("report"))
        # execution_stats in current releases, inference_stats in the first ones.
        for group in ("execution_stats", "inference_stats"):
            summary = _mapping(_mapping(groups.get(group)).get("error_summary"))
            hardware = summary.get("hardware")
            total += hardware if isinstance(hardware, int) else 0
    return [NeuronError(-1, NeuronErrorKind.HARDWARE, total)] if total else []


def _errors(report: Mapping[str, Any]) -> list[str]:
    sections = [
        _mapping(report.get("neuron_hardware_info")),
        _mapping(_mapping(report.get("system_data")).get("neuron_hw_counters")),
    ]
    return [str(s["error"]) for s in sections if s.get("error")]


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def read_one_report(timeout: float = 30.0) -> str:
    """The first report ``neuron-monitor`` prints (it streams one JSON line per period)."""
    binary = shutil.which("neuron-monitor")
    if binary is None:
        raise TemporaryError(
            "neuron-monitor is not installed (package aws-neuronx-tools)", delay=300
        )
    with subprocess.Popen(  # noqa: S603 - fixed argv, no shell
        [binary], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    ) as process:
        try:
            line = _first_line(process, timeout)
        finally:
            process.kill()
    if not line:
        raise TemporaryError("neuron-monitor exited without printing a report", delay=60)
    return line


def _first_line(process: subprocess.Popen[str], timeout: float) -> str:
    import selectors

    assert process.stdout is not None  # stdout=PIPE above
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        if not selector.select(timeout):
            raise TemporaryError(f"neuron-monitor printed nothing in {timeout:.0f}s", delay=60)
    return process.stdout.readline()


class NeuronMonitorProbe:
    """A GpuProbe over neuron-monitor; ``read`` returns one report (tests pass recorded ones)."""

    def __init__(
        self, expected_devices: int | None = None, read: Callable[[], str] = read_one_report
    ) -> None:
        self._expected = expected_devices
        self._read = read

    def observe(self) -> Observation:
        try:
            return parse_report(self._read(), self._expected)
        except TemporaryError as exc:
            return Observation(
                accelerator="neuron", problems=(exc.message,), sources=("neuron-monitor",)
            )

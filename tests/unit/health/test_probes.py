"""The probes' parsers and the NVML adapter, from recorded fixtures."""

from __future__ import annotations

import json
from pathlib import Path

import pynvml
import pytest

from corral.errors import PermanentError
from corral.health.dcgm import DcgmProbe, parse_health_check
from corral.health.fake import FakeNvmlLibrary
from corral.health.kernel_log import KernelLogProbe, parse_xid_line, parse_xids, pod_uid_of
from corral.health.neuron import NeuronMonitorProbe, parse_report
from corral.health.nvml import NvmlProbe
from corral.health.observations import NeuronError, NeuronErrorKind, Throttle

FIXTURES = Path(__file__).parents[2] / "fixtures" / "gpu"


def nvml(name: str, folder: str = "nvml") -> tuple[NvmlProbe, FakeNvmlLibrary]:
    state = json.loads((FIXTURES / folder / f"{name}.json").read_text())
    library = FakeNvmlLibrary(state)
    return NvmlProbe(state.get("expected_devices"), library=library.module()), library


def test_xid_line_fields_from_dmesg() -> None:
    line = (FIXTURES / "kernel-log" / "xid-13.log").read_text()
    event = parse_xid_line(line)
    assert event is not None
    assert (event.code, event.pci_bus_id, event.pid, event.process) == (
        13,
        "0000:18:00",
        48213,
        "python3",
    )
    assert event.message.startswith("Graphics SM Warp Exception")


def test_xid_line_with_unknown_pid_and_no_name() -> None:
    event = parse_xid_line((FIXTURES / "kernel-log" / "xid-48.log").read_text())
    assert event is not None
    assert (event.code, event.pid, event.process) == (48, None, "")
    fallen = parse_xid_line((FIXTURES / "kernel-log" / "xid-79.log").read_text())
    assert fallen is not None
    assert (fallen.code, fallen.pid, fallen.message) == (79, None, "GPU has fallen off the bus.")


def test_journalctl_output_yields_only_the_xid_lines() -> None:
    lines = (FIXTURES / "kernel-log" / "journalctl-mixed.log").read_text().splitlines()
    assert [x.code for x in parse_xids(lines)] == [13, 13, 79]
    assert parse_xid_line("NVRM: GPU 0000:5d:00.0: GPU has fallen off the bus.") is None


def test_workloads_are_resolved_only_when_the_process_is_known() -> None:
    lines = (FIXTURES / "kernel-log" / "journalctl-mixed.log").read_text().splitlines()
    events = parse_xids(lines, resolve=lambda pid: "pod-uid-1" if pid == 48213 else None)
    assert [x.workload for x in events] == ["pod-uid-1", "pod-uid-1", None]


def test_pod_uid_from_a_cgroup_path(tmp_path: Path) -> None:
    (tmp_path / "42").mkdir()
    (tmp_path / "42" / "cgroup").write_text(
        "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-"
        "pod0c1d2e3f_4a5b_6c7d_8e9f_0a1b2c3d4e5f.slice/cri-containerd-abc.scope\n"
    )
    assert pod_uid_of(42, tmp_path) == "0c1d2e3f-4a5b-6c7d-8e9f-0a1b2c3d4e5f"
    assert pod_uid_of(43, tmp_path) is None


def test_an_unreadable_kernel_log_is_a_problem_not_a_crash() -> None:
    from corral.errors import TemporaryError

    def unreadable() -> list[str]:
        raise TemporaryError("cannot read /dev/kmsg (Operation not permitted)")

    seen = KernelLogProbe(unreadable).observe()
    assert seen.xids == ()
    assert seen.problems == ("kernel log: cannot read /dev/kmsg (Operation not permitted)",)


def test_nvml_reads_every_field_of_a_healthy_machine() -> None:
    probe, library = nvml("healthy-8xh100")
    seen = probe.observe()
    assert (seen.device_count, seen.expected_devices, len(seen.devices)) == (8, 8, 8)
    first = seen.devices[0]
    assert first.name == "NVIDIA H100 80GB HBM3"
    assert first.pci_bus_id == "00000000:18:00.0"
    assert (first.ecc_uncorrected, first.ecc_corrected, first.temperature_c) == (0, 0, 34.0)
    assert first.power_w == pytest.approx(69.0)
    assert first.retired_pages_dbe is None  # not supported on this GPU: unknown, not zero
    assert seen.problems == ()
    probe.close()
    assert library.calls == ["nvmlInit", "nvmlEventSetFree", "nvmlShutdown"]


def test_nvml_maps_remapping_ecc_throttle_and_lost_gpus() -> None:
    assert nvml("ecc-uncorrected")[0].observe().devices[0].ecc_uncorrected == 2
    assert nvml("remap-pending")[0].observe().devices[1].remap_pending
    assert nvml("remap-failure")[0].observe().devices[2].remap_failed
    assert nvml("retired-pages-pending")[0].observe().devices[3].retired_pages_pending
    assert nvml("gpu-lost")[0].observe().devices[4].lost
    hot = nvml("throttle-hw-slowdown")[0].observe().devices[5]
    assert hot.throttles == {Throttle.HW_SLOWDOWN, Throttle.HW_THERMAL}
    missing = nvml("gpu-missing")[0].observe()
    assert (missing.device_count, missing.expected_devices) == (7, 8)


def test_nvml_xid_events_are_drained_once_and_mapped_to_the_bus() -> None:
    probe, _ = nvml("xid-event-79")
    first = probe.observe()
    assert [(x.code, x.pci_bus_id, x.source) for x in first.xids] == [
        (79, "00000000:5D:00.0", "nvml")
    ]
    assert probe.observe().xids == ()


def test_nvml_unsupported_fields_are_unknown_not_problems() -> None:
    seen = nvml("healthy-a10g-unsupported-fields")[0].observe()
    device = seen.devices[0]
    assert (device.remap_pending, device.remap_failed, device.throttles) == (
        False,
        False,
        frozenset(),
    )
    assert seen.problems == ()


def test_nvml_unavailable_says_so_and_how_to_fix_it() -> None:
    probe, _ = nvml("driver-not-loaded", folder="unavailable")
    with pytest.raises(PermanentError, match="NVML is not available") as caught:
        probe.observe()
    assert "corral[gpu]" in caught.value.message
    assert isinstance(caught.value.__cause__, Exception)


def test_the_fake_library_uses_pynvmls_constants() -> None:
    fake = FakeNvmlLibrary({"devices": []}).module()
    for name, value in vars(fake).items():
        if name.startswith(("NVML_", "nvmlEventType", "nvmlClocksThrottleReason")):
            assert getattr(pynvml, name) == value, name


def test_real_pynvml_without_a_driver_is_a_clear_permanent_error() -> None:
    with pytest.raises(PermanentError, match="NVML is not available"):
        NvmlProbe(library=pynvml).observe()


def test_neuron_report_counts_and_uncorrectable_errors() -> None:
    hbm = parse_report((FIXTURES / "neuron" / "hbm-uncorrectable.json").read_text(), 16)
    assert hbm.neuron_errors == (NeuronError(3, NeuronErrorKind.HBM_UNCORRECTABLE, 1),)
    assert (hbm.device_count, hbm.accelerator) == (16, "neuron")
    runtime = parse_report((FIXTURES / "neuron" / "runtime-hardware-error.json").read_text())
    assert runtime.neuron_errors == (NeuronError(-1, NeuronErrorKind.HARDWARE, 3),)
    corrected = parse_report((FIXTURES / "neuron" / "hbm-corrected-only.json").read_text())
    assert corrected.neuron_errors == ()


def test_neuron_monitor_garbage_is_a_problem() -> None:
    seen = NeuronMonitorProbe(16, read=lambda: "neuron-monitor: not ready\n").observe()
    assert seen.neuron_errors == ()
    assert "not JSON" in seen.problems[0]


def test_dcgm_incidents_with_wrapped_messages() -> None:
    incidents = parse_health_check((FIXTURES / "dcgm" / "memory-failure.txt").read_text())
    assert [(i.gpu, i.system, i.severity) for i in incidents] == [
        (0, "Memory", "Failure"),
        (3, "PCIe", "Warning"),
    ]
    assert incidents[0].message == "A volatile double-bit ECC error has occurred on GPU 0."
    assert parse_health_check((FIXTURES / "dcgm" / "healthy.txt").read_text()) == ()
    assert DcgmProbe(run=lambda: "").observe().dcgm == ()

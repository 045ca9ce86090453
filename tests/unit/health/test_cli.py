"""`corral health check`: the report, its exit status, and the no-GPU message."""

from __future__ import annotations

import io
from pathlib import Path

from rich.console import Console
from typer.testing import CliRunner

from corral.cli.health import app, run_check
from corral.health.fake import FakeGpuProbe
from corral.health.port import CombinedProbe

FIXTURES = Path(__file__).parents[2] / "fixtures" / "gpu"


def report(probe: FakeGpuProbe) -> tuple[int, str]:
    out = io.StringIO()
    status = run_check(Console(file=out, width=200, color_system=None), probe)
    return status, out.getvalue()


def test_a_healthy_machine_prints_every_gpu_and_exits_zero() -> None:
    status, text = report(
        FakeGpuProbe.from_fixtures(nvml=FIXTURES / "nvml" / "healthy-8xh100.json")
    )
    assert status == 0
    assert text.count("NVIDIA H100 80GB HBM3") == 8
    assert "8 nvidia device(s) found of 8 expected" in text
    assert text.rstrip().endswith("healthy (nvml)")


def test_a_faulty_gpu_exits_one_and_names_the_fault() -> None:
    probe = FakeGpuProbe.from_fixtures(
        nvml=FIXTURES / "nvml" / "remap-failure.json",
        kernel_log=FIXTURES / "kernel-log" / "xid-13.log",
    )
    status, text = report(probe)
    assert status == 1
    assert "row remapping failed" in text
    assert "faulty → drain-replace (nvml, kernel-log)" in text


def test_an_application_xid_is_degraded_not_a_fault() -> None:
    status, text = report(
        FakeGpuProbe.from_fixtures(
            nvml=FIXTURES / "nvml" / "healthy-8xh100.json",
            kernel_log=FIXTURES / "kernel-log" / "xid-31.log",
        )
    )
    assert status == 0
    assert "degraded → restart-workload" in text


def test_a_kernel_log_without_any_readable_device_is_not_a_success() -> None:
    status, text = report(
        FakeGpuProbe.from_fixtures(kernel_log=FIXTURES / "kernel-log" / "xid-31.log")
    )
    assert status == 2
    assert "degraded → restart-workload" in text
    assert "no nvidia device could be read" in text


def test_nvml_unavailable_exits_two_with_a_clear_message() -> None:
    unavailable = FakeGpuProbe.from_fixtures(
        nvml=FIXTURES / "unavailable" / "driver-not-loaded.json"
    )
    status, text = report(unavailable)
    assert status == 2
    assert "NVML is not available" in text
    assert "corral[gpu]" in text


def test_the_command_on_a_machine_without_nvidia(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["check", "--kernel-log", "off", "--no-dcgm"])
    assert result.exit_code == 2
    assert "NVML is not available" in " ".join(result.output.split())


def test_an_unknown_kernel_log_source_is_refused() -> None:
    result = CliRunner().invoke(app, ["check", "--kernel-log", "/no/such/file"])
    assert result.exit_code == 2
    assert "use auto, journal, kmsg, off or a file" in " ".join(result.output.split())


def test_combined_probe_with_nothing_read_exits_two() -> None:
    status, text = report(FakeGpuProbe(CombinedProbe([])))
    assert status == 2
    assert "no nvidia device could be read" in text

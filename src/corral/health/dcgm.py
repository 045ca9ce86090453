"""The optional DCGM probe: incidents from ``dcgmi health --check`` (text output)."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Callable

from corral.errors import TemporaryError
from corral.health.observations import DcgmIncident, Observation

_ROW = re.compile(r"^\|\s*(?P<left>[^|]*?)\s*\|\s*(?P<right>.*?)\s*\|\s*$")
_ENTITY = re.compile(r"^GPU ID:\s*(?P<gpu>\d+)$")
_INCIDENT = re.compile(
    r"^(?P<system>[A-Za-z][\w /-]*?) system:\s*(?P<severity>Warning|Failure)\s*-\s*(?P<message>.*)$"
)


def parse_health_check(text: str) -> tuple[DcgmIncident, ...]:
    """The incidents in a ``dcgmi health --check`` report; () when it says Healthy."""
    incidents: list[DcgmIncident] = []
    gpu: int | None = None
    for line in text.splitlines():
        row = _ROW.match(line.strip())
        if row is None:
            continue
        left, right = row.group("left"), row.group("right")
        entity = _ENTITY.match(left)
        if entity:
            gpu = int(entity.group("gpu"))
        elif left:
            gpu = None  # "Overall Health" or a non-GPU entity such as an NVSwitch
        incident = _INCIDENT.match(right)
        if incident:
            incidents.append(
                DcgmIncident(gpu, incident["system"], incident["severity"], incident["message"])
            )
        elif right and incidents and not left and not _is_status(right):
            last = incidents[-1]
            incidents[-1] = DcgmIncident(
                last.gpu, last.system, last.severity, f"{last.message} {right}"
            )
    return tuple(incidents)


def _is_status(text: str) -> bool:
    return text in ("Healthy", "Warning", "Failure")


def run_health_check(timeout: float = 30.0) -> str:
    """The text ``dcgmi health --check`` prints (needs nv-hostengine running with watches set)."""
    binary = shutil.which("dcgmi")
    if binary is None:
        raise TemporaryError("dcgmi is not installed (DCGM is optional)", delay=300)
    try:
        done = subprocess.run(  # noqa: S603 - fixed argv, no shell
            [binary, "health", "--check"],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise TemporaryError(f"dcgmi health --check failed: {exc}", delay=60) from exc
    if done.returncode != 0 and "Health" not in done.stdout:
        raise TemporaryError(f"dcgmi health --check failed: {done.stderr.strip()}", delay=60)
    return done.stdout


class DcgmProbe:
    """A GpuProbe over ``dcgmi health --check``; ``run`` returns its text (tests: a recording)."""

    def __init__(self, run: Callable[[], str] = run_health_check) -> None:
        self._run = run

    def observe(self) -> Observation:
        try:
            text = self._run()
        except TemporaryError as exc:
            return Observation(problems=(exc.message,), sources=("dcgm",))
        return Observation(dcgm=parse_health_check(text), sources=("dcgm",))

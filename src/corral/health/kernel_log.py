"""The kernel-log probe: ``NVRM: Xid (PCI:…): <code>, …`` lines from /dev/kmsg or journalctl."""

from __future__ import annotations

import errno
import os
import re
import shutil
import subprocess
from collections.abc import Callable, Iterable
from pathlib import Path

from corral.errors import TemporaryError
from corral.health.observations import Observation, XidEvent

_XID = re.compile(
    r"NVRM: Xid \(PCI:(?P<pci>[0-9A-Fa-f:.]+)\): (?P<code>\d+)"
    r"(?:, pid=(?P<pid>'?<?[^,']*>?'?))?"
    r"(?:, name=(?P<name>[^,]*))?"
    r"(?:, (?P<message>.*))?$"
)
_POD_UID = re.compile(
    r"pod([0-9a-f]{8}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{12})"
)

WorkloadResolver = Callable[[int], str | None]
"""Maps a process id to the workload it belongs to (a pod UID), or None when unknown."""


def parse_xid_line(line: str) -> XidEvent | None:
    """The Xid in one kernel-log line (any prefix: kmsg, dmesg, journalctl), or None."""
    match = _XID.search(line.rstrip())
    if match is None:
        return None
    pid = _pid(match.group("pid"))
    name = (match.group("name") or "").strip()
    return XidEvent(
        code=int(match.group("code")),
        pci_bus_id=match.group("pci").lower(),
        pid=pid,
        process="" if name in ("", "<unknown>") else name,
        message=(match.group("message") or "").strip(),
        source="kernel-log",
    )


def parse_xids(
    lines: Iterable[str], resolve: WorkloadResolver | None = None
) -> tuple[XidEvent, ...]:
    """Every Xid in ``lines``, with ``workload`` set where ``resolve`` knows the process."""
    events: list[XidEvent] = []
    for line in lines:
        event = parse_xid_line(line)
        if event is None:
            continue
        # An unresolved process stays anonymous: guessing would make one crash-looping
        # workload look like many and escalate an application fault to the hardware.
        workload = resolve(event.pid) if resolve and event.pid is not None else None
        events.append(_with_workload(event, workload) if workload else event)
    return tuple(events)


def pod_uid_of(pid: int, proc: Path = Path("/proc")) -> str | None:
    """The Kubernetes pod UID a process runs in, read from its cgroup path; None if not a pod."""
    try:
        text = (proc / str(pid) / "cgroup").read_text(encoding="utf-8")
    except OSError:
        return None
    match = _POD_UID.search(text)
    return match.group(1).replace("_", "-") if match else None


def _pid(raw: str | None) -> int | None:
    text = (raw or "").strip("'")
    return int(text) if text.isdigit() and int(text) > 0 else None


def _with_workload(event: XidEvent, workload: str) -> XidEvent:
    return XidEvent(
        code=event.code,
        pci_bus_id=event.pci_bus_id,
        pid=event.pid,
        process=event.process,
        workload=workload,
        message=event.message,
        source=event.source,
    )


class KmsgReader:
    """Reads the kernel ring buffer without blocking, returning only records not seen before."""

    def __init__(self, path: Path = Path("/dev/kmsg")) -> None:
        self._path = path
        self._last_seq = -1

    def __call__(self) -> list[str]:
        try:
            fd = os.open(self._path, os.O_RDONLY | os.O_NONBLOCK)
        except OSError as exc:
            raise TemporaryError(
                f"cannot read {self._path} ({exc.strerror}); run the agent privileged or with "
                "CAP_SYSLOG, or use --kernel-log journalctl",
                delay=60.0,
            ) from exc
        try:
            return self._drain(fd)
        finally:
            os.close(fd)

    def _drain(self, fd: int) -> list[str]:
        lines: list[str] = []
        while True:
            try:
                record = os.read(fd, 8192)
            except OSError as exc:
                if exc.errno == errno.EPIPE:  # the ring buffer overwrote records; keep reading
                    continue
                if exc.errno == errno.EAGAIN:
                    return lines
                raise TemporaryError(f"reading {self._path} failed ({exc.strerror})") from exc
            if not record:
                return lines
            header, _, message = record.decode("utf-8", "replace").partition(";")
            seq = int(header.split(",")[1])
            if seq > self._last_seq:
                self._last_seq = seq
                lines.append(message.rstrip("\n"))


class JournalReader:
    """Reads kernel messages through ``journalctl -k``, from the cursor it last reached."""

    def __init__(self, since: str = "-1h", timeout: float = 20.0) -> None:
        self._since = since
        self._cursor: str | None = None
        self._timeout = timeout

    def __call__(self) -> list[str]:
        journalctl = shutil.which("journalctl")
        if journalctl is None:
            raise TemporaryError("journalctl is not installed; use --kernel-log kmsg", delay=60.0)
        where = ["--after-cursor", self._cursor] if self._cursor else ["--since", self._since]
        argv = [journalctl, "-k", "--no-pager", "-o", "short-iso", "--show-cursor", *where]
        try:
            done = subprocess.run(  # noqa: S603 - fixed argv, no shell
                argv, capture_output=True, text=True, timeout=self._timeout, check=True
            )
        except (OSError, subprocess.SubprocessError) as exc:
            raise TemporaryError(f"journalctl -k failed: {exc}", delay=60.0) from exc
        lines = done.stdout.splitlines()
        if lines and lines[-1].startswith("-- cursor: "):
            self._cursor = lines.pop().removeprefix("-- cursor: ")
        return lines


class KernelLogProbe:
    """A GpuProbe that reports the Xids logged since its previous read."""

    def __init__(
        self, read: Callable[[], list[str]], resolve: WorkloadResolver | None = None
    ) -> None:
        self._read = read
        self._resolve = resolve

    def observe(self) -> Observation:
        try:
            lines = self._read()
        except TemporaryError as exc:
            return Observation(problems=(f"kernel log: {exc.message}",), sources=("kernel-log",))
        return Observation(xids=parse_xids(lines, self._resolve), sources=("kernel-log",))

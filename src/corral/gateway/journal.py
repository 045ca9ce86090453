"""The usage journal: a per-process, append-only write-ahead file of finished requests.

Each finished request's record is written here (one ``write`` to the OS) before the last byte
of its answer is sent and before its reservation is settled, so a process that is killed loses
no record of a request a client saw answered. The ledger ships sealed segments to the store and
deletes what the store confirmed; a process that finds another's journal unlocked (its owner
died) adopts and ships it. What a machine crash (not a process crash) can lose depends on the
fsync policy: see ``FsyncPolicy``.

Layout: ``<directory>/<owner>/lock`` (held with ``flock`` for the owner's lifetime) and
``<directory>/<owner>/<seq>.wal`` segments, one JSON entry per line.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import socket
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

log = logging.getLogger("corral.gateway.journal")

_LOCK = "lock"
_SUFFIX = ".wal"
LEGACY_SPOOL = "usage-*.jsonl"
"""Spool files of the ledger before the journal: shipped like a dead owner's segments."""


class FsyncPolicy(StrEnum):
    """When journal writes are forced to the disk (every policy survives a process crash).

    - ``none``: never; a machine crash loses what the OS had not yet written back (by default
      up to ~30 s on Linux).
    - ``batch``: once per ledger interval, before a segment is shipped; a machine crash loses at
      most the records of the last interval (0.5 s by default).
    - ``always``: after every record, before the answer's last byte; a machine crash loses
      nothing a client saw answered (costs one disk flush per request).
    """

    NONE = "none"
    BATCH = "batch"
    ALWAYS = "always"


def new_owner() -> str:
    """A name for this process's journal that no other process, here or elsewhere, shares:
    host, process id and a random boot id (a pid is reused after a restart)."""
    host = "".join(c if c.isalnum() or c in "-_" else "_" for c in socket.gethostname())[:40]
    return f"{host}.{os.getpid()}.{os.urandom(4).hex()}"


@dataclass(slots=True)
class Segment:
    """One journal file and what is known about its records."""

    path: Path
    records: int = 0
    first_time: float | None = None


@dataclass(slots=True)
class Orphan:
    """The journal of a process that died, locked by the process that adopts it."""

    owner: str
    directory: Path
    segments: list[Path]
    lock_fd: int = field(repr=False)

    def forget(self) -> None:
        """Everything of the dead owner is in the store: remove its journal and lock."""
        for path in self.directory.glob("*"):
            path.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            self.directory.rmdir()
        os.close(self.lock_fd)

    def release(self) -> None:
        """Give the journal back (unshipped) for a later try, by this or another process."""
        os.close(self.lock_fd)


class UsageJournal:
    """This process's journal: ``append`` on the request path, ``seal`` and ship off it."""

    def __init__(self, directory: Path, owner: str, fsync: FsyncPolicy = FsyncPolicy.BATCH) -> None:
        self.directory = directory
        self.owner = owner
        self._fsync = fsync
        self._own = directory / owner
        self._lock_fd = -1
        self._fd = -1
        self._seq = 0
        self._dirty = False
        self.current = Segment(self._own / f"{0:012d}{_SUFFIX}")

    def open(self) -> None:
        """Create and lock this process's journal (built under a hidden name, then renamed, so
        no other process ever sees it unlocked)."""
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        hidden = self.directory / f".{self.owner}"
        hidden.mkdir(mode=0o700)
        self._lock_fd = os.open(hidden / _LOCK, os.O_CREAT | os.O_RDWR, 0o600)
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        hidden.rename(self._own)
        self._open_segment()

    def append(self, line: bytes, at: float) -> None:
        """Write one entry (a whole line) to the OS; with ``always``, to the disk."""
        os.write(self._fd, line)
        segment = self.current
        segment.records += 1
        if segment.first_time is None:
            segment.first_time = at
        if self._fsync is FsyncPolicy.ALWAYS:
            os.fsync(self._fd)
        else:
            self._dirty = True

    def seal(self) -> Segment | None:
        """Close the current segment (flushed to disk unless the policy is ``none``) and start
        the next; the sealed segment, or None when it held nothing."""
        segment = self.current
        if not segment.records:
            return None
        if self._dirty and self._fsync is FsyncPolicy.BATCH:
            os.fsync(self._fd)
        self._dirty = False
        os.close(self._fd)
        self._seq += 1
        self._open_segment()
        return segment

    def close(self) -> None:
        """Flush and close; the lock goes with the file, so unshipped segments are adoptable."""
        if self._fd >= 0:
            if self._dirty and self._fsync is not FsyncPolicy.NONE:
                os.fsync(self._fd)
            os.close(self._fd)
            self._fd = -1
            if not self.current.records:
                self.current.path.unlink(missing_ok=True)
        if self._lock_fd >= 0:
            if not any(self._own.glob(f"*{_SUFFIX}")):
                (self._own / _LOCK).unlink(missing_ok=True)
                with contextlib.suppress(OSError):
                    self._own.rmdir()
            os.close(self._lock_fd)
            self._lock_fd = -1

    def claim_orphans(self) -> list[Orphan]:
        """Journals whose owner is gone (their lock is free), each now locked by this process;
        a legacy spool directory's files count as one ownerless journal."""
        found: list[Orphan] = []
        for directory in sorted(self.directory.iterdir()):
            if directory == self._own or directory.name.startswith(".") or not directory.is_dir():
                continue
            orphan = _claim(directory)
            if orphan is not None:
                found.append(orphan)
        return found

    def legacy_spool(self) -> list[Path]:
        """Spool files an older Corral left in the directory (plain usage records)."""
        return sorted(self.directory.glob(LEGACY_SPOOL))

    def _open_segment(self) -> None:
        self.current = Segment(self._own / f"{self._seq:012d}{_SUFFIX}")
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC
        self._fd = os.open(self.current.path, flags, 0o600)


def _claim(directory: Path) -> Orphan | None:
    try:
        fd = os.open(directory / _LOCK, os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        return None  # being removed by its owner or another adopter
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None  # its owner is alive
    if not (directory / _LOCK).exists():  # adopted and forgotten while we opened it
        os.close(fd)
        return None
    segments = sorted(directory.glob(f"*{_SUFFIX}"))
    return Orphan(directory.name, directory, segments, fd)

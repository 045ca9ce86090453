"""The ledger writer: journals each record at once, ships the journal in batches, keeps records
on disk while the store is down or stalled, and adopts the journal of a process that died."""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import os
from pathlib import Path

import orjson
import pytest
from prometheus_client import CollectorRegistry

from corral.clock import FakeClock
from corral.counters.port import Reservation, ScopeCharge
from corral.errors import TemporaryError
from corral.gateway.journal import FsyncPolicy
from corral.gateway.ledger import Ledger, LedgerMetrics
from corral.gateway.metering import Settlement, UsageEvent
from support.usage import usage_event


class FlakySink:
    """A store that keeps every write (so a duplicate write shows) and can be down or stall."""

    def __init__(self) -> None:
        self.written: list[UsageEvent] = []
        self.down = False
        self.stall = False
        self.writes = 0

    async def write_usage(self, records: list[UsageEvent]) -> None:
        if self.stall:
            await asyncio.sleep(3600)
        if self.down:
            raise TemporaryError("store down")
        self.writes += 1
        self.written += records

    def ids(self) -> collections.Counter[str]:
        return collections.Counter(r.request_id for r in self.written)


def event(i: int) -> UsageEvent:
    return usage_event(request_id=f"req_{i}")


def ledger(
    sink: FlakySink, tmp_path: Path, clock: FakeClock | None = None, **kwargs: object
) -> tuple[Ledger, CollectorRegistry]:
    registry = CollectorRegistry()
    writer = Ledger(
        sink,  # type: ignore[arg-type]
        tmp_path / "journal",
        clock or FakeClock(),
        LedgerMetrics(registry),
        **kwargs,  # type: ignore[arg-type]
    )
    return writer, registry


def gauges(registry: CollectorRegistry) -> tuple[float | None, ...]:
    return tuple(
        registry.get_sample_value(f"corral_ledger_{name}")
        for name in ("pending_records", "spool_records", "lag_seconds", "store_down")
    )


def journal_files(tmp_path: Path) -> list[Path]:
    return sorted((tmp_path / "journal").rglob("*.wal"))


async def test_records_are_written_in_batches_exactly_once(tmp_path: Path) -> None:
    sink = FlakySink()
    writer, registry = ledger(sink, tmp_path, batch_size=100)
    await writer.start()
    for i in range(250):
        writer.record(event(i))
    await writer.stop()
    assert sink.ids() == collections.Counter(f"req_{i}" for i in range(250))
    assert sink.writes == 3
    assert registry.get_sample_value("corral_ledger_records_written_total") == 250
    assert journal_files(tmp_path) == []


async def test_a_record_is_on_disk_as_soon_as_record_returns(tmp_path: Path) -> None:
    writer, _ = ledger(FlakySink(), tmp_path, fsync=FsyncPolicy.ALWAYS)
    await writer.start()
    writer.record(event(1))
    (segment,) = journal_files(tmp_path)
    entry = orjson.loads(segment.read_bytes())
    assert entry["u"]["request_id"] == "req_1"
    await writer.stop()


async def test_store_outage_keeps_records_in_the_journal_then_ships_each_once(
    tmp_path: Path,
) -> None:
    sink = FlakySink()
    clock = FakeClock()
    writer, registry = ledger(sink, tmp_path, clock, batch_size=50)
    await writer.start()
    sink.down = True
    for i in range(120):
        writer.record(dataclasses.replace(event(i), time=clock.now()))
    await writer.flush()
    clock.advance(30)
    assert sink.written == []
    assert gauges(registry) == (120, 120, 30, 1)  # pending is not 0 while lag grows
    sink.down = False
    for i in range(120, 130):
        writer.record(event(i))
    await writer.flush()
    assert gauges(registry) == (0, 0, 0, 0)
    await writer.stop()
    assert sink.ids() == collections.Counter(f"req_{i}" for i in range(130))
    assert journal_files(tmp_path) == []


async def test_a_stalled_store_counts_as_down_and_stop_is_bounded(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    sink = FlakySink()
    writer, registry = ledger(sink, tmp_path, write_timeout=0.05, stop_timeout=0.2)
    await writer.start()
    sink.stall = True
    for i in range(5):
        writer.record(event(i))
    await writer.flush()
    await writer.flush()
    assert gauges(registry)[:2] == (5, 5)
    assert registry.get_sample_value("corral_ledger_store_down") == 1
    warnings = [r for r in caplog.records if "unavailable" in r.getMessage()]
    assert len(warnings) == 1  # once per outage, not once per try
    loop = asyncio.get_running_loop()
    started = loop.time()
    await writer.stop()
    assert loop.time() - started < 1.0
    assert len(journal_files(tmp_path)) == 1  # kept for the next process


async def test_a_journal_left_by_a_dead_process_is_shipped_and_settled_once(
    tmp_path: Path,
) -> None:
    sink = FlakySink()
    sink.down = True
    dead, _ = ledger(sink, tmp_path, owner="host.1.dead")
    await dead.start()
    reservation = Reservation(
        "r1", "redis", (ScopeCharge("team:t", 0, True),), 10, 20, "2026-01", 9
    )
    dead.record(event(1), Settlement(reservation, 7, 11))
    dead.record(event(2))
    del dead  # killed: never stopped, its journal stays locked until the fd goes
    _close_locks_of(tmp_path / "journal" / "host.1.dead")
    settled: list[Settlement] = []
    gone: list[str] = []

    async def settle_late(settlement: Settlement) -> None:
        settled.append(settlement)

    async def owner_gone(owner: str) -> None:
        gone.append(owner)

    sink.down = False
    heir, registry = ledger(sink, tmp_path, settle_late=settle_late, owner_gone=owner_gone)
    await heir.start()
    assert gauges(registry)[:2] == (2, 2)
    await heir.flush()
    await heir.stop()
    assert sink.ids() == collections.Counter(["req_1", "req_2"])
    assert [(s.reservation.id, s.tokens, s.cost_micros) for s in settled] == [("r1", 7, 11)]
    assert gone == ["host.1.dead"]
    assert not (tmp_path / "journal" / "host.1.dead").exists()


async def test_a_live_process_journal_is_never_adopted(tmp_path: Path) -> None:
    sink = FlakySink()
    sink.down = True
    alive, _ = ledger(sink, tmp_path)
    await alive.start()
    alive.record(event(1))
    await alive.flush()
    sink.down = False
    other, registry = ledger(sink, tmp_path)
    await other.start()
    await other.flush()
    assert sink.written == []
    assert gauges(registry)[0] == 0
    await other.stop()
    await alive.stop()
    assert sink.ids() == collections.Counter(["req_1"])


async def test_a_journal_stopped_with_the_store_down_ships_on_the_next_start(
    tmp_path: Path,
) -> None:
    sink = FlakySink()
    sink.down = True
    first, _ = ledger(sink, tmp_path)
    await first.start()
    for i in range(10):
        first.record(event(i))
    await first.stop()
    sink.down = False
    second, registry = ledger(sink, tmp_path)
    await second.start()
    assert gauges(registry)[0] == 10
    await second.stop()
    assert sink.ids() == collections.Counter(f"req_{i}" for i in range(10))


async def test_a_legacy_spool_file_is_shipped(tmp_path: Path) -> None:
    (tmp_path / "journal").mkdir()
    lines = b"".join(orjson.dumps(event(i)) + b"\n" for i in range(3))
    (tmp_path / "journal" / "usage-1.000000.jsonl").write_bytes(lines)
    sink = FlakySink()
    writer, _ = ledger(sink, tmp_path)
    await writer.start()
    await writer.stop()
    assert sink.ids() == collections.Counter(f"req_{i}" for i in range(3))
    assert list((tmp_path / "journal").iterdir()) == []


async def test_a_torn_last_line_is_skipped_not_fatal(tmp_path: Path) -> None:
    sink = FlakySink()
    sink.down = True
    dead, _ = ledger(sink, tmp_path, owner="host.2.torn")
    await dead.start()
    dead.record(event(1))
    with (tmp_path / "journal" / "host.2.torn" / f"{0:012d}.wal").open("ab") as f:
        f.write(b'{"u": {"request_id": "req_')  # a machine crash mid-write
    _close_locks_of(tmp_path / "journal" / "host.2.torn")
    sink.down = False
    heir, _ = ledger(sink, tmp_path)
    await heir.start()
    await heir.stop()
    assert sink.ids() == collections.Counter(["req_1"])


async def test_full_journal_is_loud_not_silent(tmp_path: Path) -> None:
    sink = FlakySink()
    sink.down = True
    writer, registry = ledger(sink, tmp_path, max_spool_records=5)
    await writer.start()
    for i in range(8):
        writer.record(event(i))
    await writer.stop()
    assert gauges(registry)[0] == 5
    assert registry.get_sample_value("corral_ledger_records_lost_total") == 3


async def test_lag_counts_records_not_yet_shipped(tmp_path: Path) -> None:
    clock = FakeClock()
    writer, registry = ledger(FlakySink(), tmp_path, clock)
    await writer.start()
    writer.record(dataclasses.replace(event(1), time=clock.now()))
    clock.advance(0.25)
    assert gauges(registry) == (1, 0, 0.25, 0)
    await writer.flush()
    assert gauges(registry) == (0, 0, 0, 0)
    await writer.stop()


class SlowSink(FlakySink):
    """A store whose first write is still running when the ledger is stopped."""

    def __init__(self) -> None:
        super().__init__()
        self.started = asyncio.Event()
        self.first = True

    async def write_usage(self, records: list[UsageEvent]) -> None:
        if self.first:
            self.first = False
            self.started.set()
            await asyncio.sleep(3600)  # cancelled by stop()
        await super().write_usage(records)


async def test_stopping_during_a_write_keeps_the_batch(tmp_path: Path) -> None:
    sink = SlowSink()
    writer, _ = ledger(sink, tmp_path, batch_size=10)
    await writer.start()
    for i in range(10):
        writer.record(event(i))
    await sink.started.wait()
    await writer.stop()
    assert sink.ids() == collections.Counter(f"req_{i}" for i in range(10))


async def test_the_journal_is_private_to_its_owner(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        sink = FlakySink()
        writer, _ = ledger(sink, tmp_path, batch_size=10)
        await writer.start()
        sink.down = True
        for i in range(20):
            writer.record(event(i))
        root = tmp_path / "journal"
        files = [p for p in root.rglob("*") if p.is_file()]
        folders = [root, *(p for p in root.rglob("*") if p.is_dir())]
        assert files
        assert {f.stat().st_mode & 0o777 for f in files} == {0o600}  # usage names teams, keys
        assert {d.stat().st_mode & 0o777 for d in folders} == {0o700}
        sink.down = False
        await writer.stop()
    finally:
        os.umask(old)


def _close_locks_of(directory: Path) -> None:
    """What the kernel does when a process dies: its file descriptors (and flock) go."""
    lock = directory / "lock"
    for fd_name in os.listdir("/proc/self/fd"):
        fd = int(fd_name)
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith(str(directory)):
            os.close(fd)
    assert lock.exists()

"""The ledger writer: batches, spools when the store is down, replays exactly once per request."""

from __future__ import annotations

import asyncio
import dataclasses
import os
from pathlib import Path

from prometheus_client import CollectorRegistry

from corral.clock import FakeClock
from corral.errors import TemporaryError
from corral.gateway.ledger import Ledger, LedgerMetrics
from corral.gateway.metering import UsageEvent
from support.usage import usage_event


class FlakySink:
    def __init__(self) -> None:
        self.records: dict[str, UsageEvent] = {}
        self.down = False
        self.writes = 0

    async def write_usage(self, records: list[UsageEvent]) -> None:
        if self.down:
            raise TemporaryError("store down")
        self.writes += 1
        for record in records:
            self.records.setdefault(record.request_id, record)


def event(i: int) -> UsageEvent:
    return usage_event(request_id=f"req_{i}")


def ledger(sink: FlakySink, tmp_path: Path, **kwargs: int) -> tuple[Ledger, LedgerMetrics]:
    metrics = LedgerMetrics(CollectorRegistry())
    return Ledger(sink, tmp_path / "spool", FakeClock(), metrics, **kwargs), metrics  # type: ignore[arg-type]


async def test_records_are_written_in_batches(tmp_path: Path) -> None:
    sink = FlakySink()
    writer, metrics = ledger(sink, tmp_path, batch_size=100)
    await writer.start()
    for i in range(250):
        writer.record(event(i))
    await writer.stop()
    assert len(sink.records) == 250
    assert sink.writes == 3
    assert metrics.written._value.get() == 250


async def test_store_outage_spools_then_replays_without_duplicates(tmp_path: Path) -> None:
    sink = FlakySink()
    writer, metrics = ledger(sink, tmp_path, batch_size=50)
    await writer.start()
    sink.down = True
    for i in range(120):
        writer.record(event(i))
    await writer.flush()
    assert sink.records == {}
    assert metrics.spooled._value.get() == 120
    sink.down = False
    for i in range(100, 130):  # 20 of these repeat request ids already spooled
        writer.record(event(i))
    await writer.flush()
    await writer.stop()
    assert sorted(sink.records) == sorted(f"req_{i}" for i in range(130))
    assert metrics.spooled._value.get() == 0
    assert list((tmp_path / "spool").iterdir()) == []


async def test_spool_left_by_an_earlier_run_is_replayed_on_start(tmp_path: Path) -> None:
    sink = FlakySink()
    sink.down = True
    first, _ = ledger(sink, tmp_path)
    await first.start()
    for i in range(10):
        first.record(event(i))
    await first.stop()
    sink.down = False
    second, metrics = ledger(sink, tmp_path)
    await second.start()
    assert metrics.spooled._value.get() == 10
    await second.stop()
    assert len(sink.records) == 10


async def test_full_spool_is_loud_not_silent(tmp_path: Path, caplog: object) -> None:
    sink = FlakySink()
    sink.down = True
    writer, metrics = ledger(sink, tmp_path, max_spool_records=5)
    await writer.start()
    for i in range(8):
        writer.record(event(i))
    await writer.stop()
    assert metrics.spooled._value.get() == 5
    assert metrics.lost._value.get() == 3


def lagging_ledger(sink: FlakySink, tmp_path: Path) -> tuple[Ledger, CollectorRegistry, FakeClock]:
    registry, clock = CollectorRegistry(), FakeClock()
    writer = Ledger(sink, tmp_path / "spool", clock, LedgerMetrics(registry))  # type: ignore[arg-type]
    return writer, registry, clock


def made_now(i: int, clock: FakeClock) -> UsageEvent:
    return dataclasses.replace(event(i), time=clock.now())


def spool_gauges(registry: CollectorRegistry) -> tuple[float | None, float | None]:
    return (
        registry.get_sample_value("corral_ledger_spool_records"),
        registry.get_sample_value("corral_ledger_lag_seconds"),
    )


async def test_spool_depth_and_lag_grow_while_the_store_is_down_and_clear_after(
    tmp_path: Path,
) -> None:
    sink = FlakySink()
    writer, registry, clock = lagging_ledger(sink, tmp_path)
    await writer.start()
    assert spool_gauges(registry) == (0, 0)
    sink.down = True
    for i in range(3):
        writer.record(made_now(i, clock))
    clock.advance(5)
    writer.record(made_now(3, clock))
    await writer.flush()
    clock.advance(30)
    assert spool_gauges(registry) == (4, 35)  # the oldest record was made 35 s ago
    writer.record(made_now(4, clock))
    await writer.flush()
    clock.advance(10)
    assert spool_gauges(registry) == (5, 45)
    sink.down = False
    await writer.flush()
    assert spool_gauges(registry) == (0, 0)
    await writer.stop()
    assert len(sink.records) == 5


async def test_lag_counts_records_still_in_memory(tmp_path: Path) -> None:
    writer, registry, clock = lagging_ledger(FlakySink(), tmp_path)
    await writer.start()
    writer.record(made_now(1, clock))
    clock.advance(0.25)
    assert spool_gauges(registry) == (0, 0.25)
    await writer.flush()
    assert spool_gauges(registry) == (0, 0)
    await writer.stop()


async def test_lag_of_a_spool_left_by_an_earlier_run_comes_from_its_oldest_record(
    tmp_path: Path,
) -> None:
    sink = FlakySink()
    sink.down = True
    first, _, clock = lagging_ledger(sink, tmp_path)
    await first.start()
    first.record(made_now(1, clock))
    clock.advance(1)
    first.record(made_now(2, clock))
    await first.stop()
    second, registry, _ = lagging_ledger(sink, tmp_path)  # a fresh clock, at the same start
    await second.start()
    assert spool_gauges(registry) == (2, 0)  # the new clock reads the first record's time
    later, registry, clock = lagging_ledger(sink, tmp_path)
    clock.advance(60)
    await later.start()
    assert spool_gauges(registry) == (2, 60)
    await second.stop()
    await later.stop()


async def test_lag_follows_the_spool_as_a_replay_gets_part_way(tmp_path: Path) -> None:
    sink = FlakySink()
    writer, registry, clock = lagging_ledger(sink, tmp_path)
    await writer.start()
    sink.down = True
    writer.record(made_now(1, clock))
    await writer.flush()  # one spool file, made at t
    clock.advance(20)
    writer.record(made_now(2, clock))
    await writer.flush()  # a second file, made at t + 20
    clock.advance(10)
    assert spool_gauges(registry) == (2, 30)
    sink.down = False
    original = sink.write_usage
    calls = 0

    async def fail_second_file(records: list[UsageEvent]) -> None:
        nonlocal calls
        calls += 1
        if calls > 1:
            raise TemporaryError("store down again")
        await original(records)

    sink.write_usage = fail_second_file  # type: ignore[method-assign]
    await writer.flush()
    assert spool_gauges(registry) == (1, 10)  # only the newer file is left
    sink.write_usage = original  # type: ignore[method-assign]
    await writer.stop()
    assert spool_gauges(registry) == (0, 0)


class SlowSink(FlakySink):
    """A store whose first write is still running when the ledger is stopped."""

    def __init__(self) -> None:
        super().__init__()
        self.started = asyncio.Event()

    async def write_usage(self, records: list[UsageEvent]) -> None:
        if self.writes == 0:
            self.writes += 1
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
    assert sorted(sink.records) == sorted(f"req_{i}" for i in range(10))


async def test_the_spool_is_private_to_its_owner(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        sink = FlakySink()
        writer, _ = ledger(sink, tmp_path, batch_size=10)
        await writer.start()
        sink.down = True
        for i in range(20):
            writer.record(event(i))
        await writer.flush()
        spool = tmp_path / "spool"
        files = list(spool.iterdir())
        assert files
        assert {f.stat().st_mode & 0o777 for f in files} == {0o600}
        assert spool.stat().st_mode & 0o777 == 0o700
        sink.down = False
        await writer.stop()
    finally:
        os.umask(old)

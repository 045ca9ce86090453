"""The ledger writer: batches, spools when the store is down, replays exactly once per request."""

from __future__ import annotations

from pathlib import Path

from prometheus_client import CollectorRegistry

from corral.clock import FakeClock
from corral.errors import TemporaryError
from corral.gateway.ledger import Ledger, LedgerMetrics
from corral.gateway.metering import UsageEvent


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
    return UsageEvent(
        request_id=f"req_{i}",
        time=1.0,
        key_id="key_1",
        team_id="team_1",
        user_id=None,
        model="m",
        endpoint="http://e",
        kind="chat/completions",
        status=200,
        prompt_tokens=3,
        completion_tokens=5,
        cost_usd=0.0,
        estimated=False,
        latency=0.1,
        time_to_first_token=0.01,
        outcome="ok",
    )


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

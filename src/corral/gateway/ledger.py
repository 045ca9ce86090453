"""The usage ledger writer: batches records off the request path, spools them to disk when the
store is down, and replays the spool when it returns — nothing dropped without a loud signal."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
from collections import deque
from pathlib import Path
from typing import Protocol

import orjson
from prometheus_client import CollectorRegistry, Counter, Gauge

from corral.clock import Clock
from corral.errors import TemporaryError
from corral.gateway.metering import UsageEvent

log = logging.getLogger("corral.gateway.ledger")


class UsageSink(Protocol):
    """Where usage records end up (the store). Writing a request id twice keeps one record."""

    async def write_usage(self, records: list[UsageEvent]) -> None: ...


class LedgerMetrics:
    """How the ledger writer is keeping up."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.pending = Gauge(
            "corral_ledger_pending_records",
            "Usage records waiting in memory to be written.",
            registry=registry,
        )
        self.spooled = Gauge(
            "corral_ledger_spool_records",
            "Usage records waiting in the on-disk spool for the store to come back.",
            registry=registry,
        )
        self.lag = Gauge(
            "corral_ledger_lag_seconds",
            "Age of the oldest usage record not yet in the store (in memory or spooled); "
            "0 when every record is written.",
            registry=registry,
        )
        self.written = Counter(
            "corral_ledger_records_written",
            "Usage records written to the store.",
            registry=registry,
        )
        self.lost = Counter(
            "corral_ledger_records_lost",
            "Usage records that could not be kept (spool full): each one is also logged.",
            registry=registry,
        )


class Ledger:
    """A Meter that batches usage records into the store, with a bounded on-disk spool."""

    def __init__(
        self,
        sink: UsageSink,
        spool_dir: Path,
        clock: Clock,
        metrics: LedgerMetrics,
        *,
        batch_size: int = 500,
        interval: float = 0.5,
        max_pending: int = 100_000,
        max_spool_records: int = 1_000_000,
    ) -> None:
        self._sink = sink
        self._spool = spool_dir
        self._clock = clock
        self._metrics = metrics
        self._batch_size = batch_size
        self._interval = interval
        self._max_pending = max_pending
        self._max_spool = max_spool_records
        self._pending: deque[UsageEvent] = deque()
        self._spooled = 0
        self._spool_oldest: float | None = None  # when the oldest spooled record was made
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        metrics.lag.set_function(self.lag)  # read at scrape time; nothing to update per record

    def lag(self) -> float:
        """Seconds since the oldest record not yet in the store was made; 0 when none waits."""
        oldest = self._spool_oldest
        try:
            head: float | None = self._pending[0].time
        except IndexError:  # empty, or emptied since a scrape on another thread looked
            head = None
        if head is not None and (oldest is None or head < oldest):
            oldest = head
        return 0.0 if oldest is None else max(0.0, self._clock.now() - oldest)

    def record(self, event: UsageEvent) -> None:
        """Queue one record (never blocks, never raises)."""
        self._pending.append(event)
        if len(self._pending) >= self._batch_size:
            self._wake.set()
        if len(self._pending) > self._max_pending:
            # The writer is far behind: move the oldest half to disk rather than grow memory.
            self._spill(len(self._pending) // 2)

    async def start(self) -> None:
        """Count what an earlier run left in the spool, then start the writer."""
        self._spool.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._spooled = sum(_count_lines(p) for p in self._spool_files())
        self._spool_oldest = self._first_spooled_time()
        self._metrics.spooled.set(self._spooled)
        self._task = asyncio.get_running_loop().create_task(self._run(), name="corral-ledger")

    async def stop(self) -> None:
        """Write everything still pending (to the store, or to the spool)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.flush()
        if self._pending:
            self._spill(len(self._pending))

    async def flush(self) -> None:
        """Replay the spool, then write pending records in batches (to the spool if that fails)."""
        try:
            await self._replay()
            while self._pending:
                batch = [
                    self._pending.popleft()
                    for _ in range(min(self._batch_size, len(self._pending)))
                ]
                try:
                    await self._sink.write_usage(batch)
                except BaseException:
                    # Store down, or the writer cancelled mid-write (stop): the batch stays
                    # pending. Writing it again is safe, the store keeps one record per id.
                    self._pending.extendleft(reversed(batch))
                    raise
                self._metrics.written.inc(len(batch))
        except TemporaryError as exc:
            log.warning("ledger: the store is unavailable (%s); spooling to disk", exc.message)
            self._spill(len(self._pending))
        finally:
            self._metrics.pending.set(len(self._pending))

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._interval):
                    await self._wake.wait()
            self._wake.clear()
            try:
                await self.flush()
            except Exception:
                # The writer must outlive any one bad batch; the records stay pending or spooled.
                log.exception("ledger: unexpected failure writing usage; will retry")

    def _spool_files(self) -> list[Path]:
        return sorted(self._spool.glob("usage-*.jsonl"))

    def _spill(self, count: int) -> None:
        records = [self._pending.popleft() for _ in range(min(count, len(self._pending)))]
        room = self._max_spool - self._spooled
        keep, lost = records[: max(0, room)], records[max(0, room) :]
        if keep:
            path = self._spool / f"usage-{self._clock.now():.6f}.jsonl"
            # Usage names teams, keys and models: readable by the owner only.
            with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600), "ab") as out:
                for record in keep:
                    out.write(orjson.dumps(dataclasses.asdict(record)) + b"\n")
            self._spooled += len(keep)
            first = min(record.time for record in keep)
            if self._spool_oldest is None or first < self._spool_oldest:
                self._spool_oldest = first
            self._metrics.spooled.set(self._spooled)
        for record in lost:
            self._metrics.lost.inc()
            log.error(
                "ledger: spool full; usage record LOST",
                extra={"lost_request_id": record.request_id, "model": record.model},
            )
        self._metrics.pending.set(len(self._pending))

    async def _replay(self) -> None:
        for path in self._spool_files():
            records = [
                UsageEvent(**orjson.loads(line)) for line in path.read_bytes().splitlines() if line
            ]
            for start in range(0, len(records), self._batch_size):
                await self._sink.write_usage(records[start : start + self._batch_size])
            # Only after every batch of the file is in the store; a crash before this line
            # replays the file again, and the store keeps one record per request id.
            path.unlink()
            self._spooled -= len(records)
            self._spool_oldest = self._first_spooled_time()
            self._metrics.spooled.set(self._spooled)
            self._metrics.written.inc(len(records))
            log.info("ledger: replayed %d spooled usage records", len(records))

    def _first_spooled_time(self) -> float | None:
        """When the oldest spooled record was made: records are spooled in the order they were
        made, into files named by when, so it is the first line of the first file."""
        for path in self._spool_files():
            with path.open("rb") as f:
                line = f.readline()
            if line.strip():
                return float(orjson.loads(line)["time"])
        return None


def _count_lines(path: Path) -> int:
    with path.open("rb") as f:
        return sum(1 for _ in f)

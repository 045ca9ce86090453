"""The usage ledger writer: each record goes to this process's journal on the request path, and
the journal is shipped to the store in batches off it; what the store confirmed is deleted.

A store that does not answer within ``write_timeout`` counts as down: records stay in the
journal (one warning, metrics show the backlog and its age) and ship when it returns. A
journal left by a process that died is adopted and shipped by the next one to look, which also
settles the reservations the dead process had not settled. Nothing is dropped without a loud
signal (``max_spool_records`` bounds the disk; past it, each lost record is logged).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any, Protocol

import orjson
from prometheus_client import CollectorRegistry, Counter, Gauge

from corral.clock import Clock
from corral.counters.port import Reservation, ScopeCharge
from corral.errors import TemporaryError
from corral.gateway.journal import FsyncPolicy, Orphan, Segment, UsageJournal, new_owner
from corral.gateway.metering import Settlement, UsageEvent

log = logging.getLogger("corral.gateway.ledger")

SettleLate = Callable[[Settlement], Awaitable[None]]
"""Settles a dead process's reservation as its journal says (must be idempotent)."""
OwnerGone = Callable[[str], Awaitable[None]]
"""Reconciles what a dead process (by owner name) still holds, once its journal is shipped."""


class UsageSink(Protocol):
    """Where usage records end up (the store). Writing a request id twice keeps one record."""

    async def write_usage(self, records: list[UsageEvent]) -> None: ...


class LedgerMetrics:
    """How the ledger writer is keeping up."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.pending = Gauge(
            "corral_ledger_pending_records",
            "Usage records not yet confirmed by the store (all of them in the on-disk journal).",
            registry=registry,
        )
        self.spooled = Gauge(
            "corral_ledger_spool_records",
            "Of the pending records, those in sealed journal segments (waiting for the store, "
            "or adopted from a process that died).",
            registry=registry,
        )
        self.lag = Gauge(
            "corral_ledger_lag_seconds",
            "Age of the oldest usage record not yet in the store; 0 when every record is written.",
            registry=registry,
        )
        self.store_down = Gauge(
            "corral_ledger_store_down",
            "1 while the store does not answer the ledger within its timeout, else 0.",
            registry=registry,
        )
        self.written = Counter(
            "corral_ledger_records_written",
            "Usage records written to the store.",
            registry=registry,
        )
        self.lost = Counter(
            "corral_ledger_records_lost",
            "Usage records that could not be kept (journal full): each one is also logged.",
            registry=registry,
        )


class Ledger:
    """A Meter that journals usage records, then ships the journal to the store in batches."""

    def __init__(
        self,
        sink: UsageSink,
        spool_dir: Path,
        clock: Clock,
        metrics: LedgerMetrics,
        *,
        batch_size: int = 500,
        interval: float = 0.5,
        max_spool_records: int = 1_000_000,
        fsync: FsyncPolicy = FsyncPolicy.BATCH,
        owner: str | None = None,
        write_timeout: float = 5.0,
        stop_timeout: float = 5.0,
        settle_late: SettleLate | None = None,
        owner_gone: OwnerGone | None = None,
    ) -> None:
        self._sink = sink
        self._journal = UsageJournal(spool_dir, owner or new_owner(), fsync)
        self._clock = clock
        self._metrics = metrics
        self._batch_size = batch_size
        self._interval = interval
        self._max_records = max_spool_records
        self._write_timeout = write_timeout
        self._stop_timeout = stop_timeout
        self._settle_late = settle_late
        self._owner_gone = owner_gone
        self._sealed: deque[Segment] = deque()
        self._orphans: list[tuple[Orphan, int, float | None]] = []  # with records, oldest
        self._unjournaled: list[UsageEvent] = []  # only when the disk refused a write
        self._pending = 0
        self._down = False
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        # Read at scrape time: nothing to update per record.
        metrics.lag.set_function(self.lag)
        metrics.pending.set_function(lambda: self._pending)
        metrics.spooled.set_function(self._spooled)

    @property
    def owner(self) -> str:
        """The name of this process's journal (also the owner of its reservations)."""
        return self._journal.owner

    def lag(self) -> float:
        """Seconds since the oldest record not yet in the store was made; 0 when none waits."""
        times = [s.first_time for s in self._sealed] + [o[2] for o in self._orphans]
        times.append(self._journal.current.first_time)
        times += [e.time for e in self._unjournaled[:1]]
        known = [t for t in times if t is not None]
        return max(0.0, self._clock.now() - min(known)) if known else 0.0

    def record(self, event: UsageEvent, settlement: Settlement | None = None) -> None:
        """Write one record to the journal (never blocks on the store, never raises)."""
        if self._pending >= self._max_records:
            self._lose(event)
            return
        line = orjson.dumps({"u": event, "s": settlement}) + b"\n"  # dataclasses, natively
        try:
            self._journal.append(line, event.time)
        except OSError as exc:
            # The disk refused: keep it in memory for the next batch rather than lose it.
            log.error("ledger: could not write the usage journal (%s); keeping in memory", exc)
            self._unjournaled.append(event)
        self._pending += 1
        if self._journal.current.records >= self._batch_size:
            self._wake.set()

    async def start(self) -> None:
        """Open this process's journal, adopt journals of processes that died, start shipping."""
        self._journal.open()
        legacy = [_legacy_segment(path) for path in self._journal.legacy_spool()]
        self._sealed.extend(legacy)
        self._pending += sum(segment.records for segment in legacy)
        self._claim_orphans()
        self._task = asyncio.get_running_loop().create_task(self._run(), name="corral-ledger")

    async def stop(self) -> None:
        """Ship what is pending, within ``stop_timeout`` whatever the store does; what the store
        did not confirm stays in the journal for the next process."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        try:
            async with asyncio.timeout(self._stop_timeout):
                await self.flush()
        except TimeoutError:
            log.warning("ledger: the store did not confirm in time at shutdown")
        self._journal.seal()
        self._journal.close()
        for orphan, _, _ in self._orphans:
            orphan.release()
        self._orphans = []
        if self._pending:
            log.warning(
                "ledger: %d usage records stay in the journal at %s; the next start ships them",
                self._pending,
                self._journal.directory,
            )

    async def flush(self) -> None:
        """Seal the journal's current segment and ship every sealed one, then adopted ones."""
        sealed = self._journal.seal()
        if sealed is not None:
            self._sealed.append(sealed)
        try:
            if self._unjournaled:
                await self._write(self._unjournaled)
                self._confirmed(len(self._unjournaled))
                self._unjournaled = []
            while self._sealed:
                segment = self._sealed[0]
                await self._ship(segment.path, adopted=False)
                self._sealed.popleft()
                self._confirmed(segment.records)
                segment.path.unlink(missing_ok=True)
            await self._ship_orphans()
        except TemporaryError as exc:
            if not self._down:
                log.warning(
                    "ledger: the store is unavailable (%s); usage stays in the journal", exc.message
                )
            self._down = True
            self._metrics.store_down.set(1)
            return
        if self._down:
            log.warning("ledger: the store is back; shipped the journal")
        self._down = False
        self._metrics.store_down.set(0)

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._interval):
                    await self._wake.wait()
            self._wake.clear()
            try:
                await self.flush()
                self._claim_orphans()
            except Exception:
                # The writer must outlive any one bad batch; the records stay in the journal.
                log.exception("ledger: unexpected failure writing usage; will retry")

    async def _ship(self, path: Path, *, adopted: bool) -> int:
        """Write one segment's records to the store; for an adopted one, settle its
        reservations too. The number of records."""
        events, settlements = _read_segment(path)
        for start in range(0, len(events), self._batch_size):
            await self._write(events[start : start + self._batch_size])
        if adopted and self._settle_late is not None:
            for settlement in settlements:
                await self._settle_late(settlement)
        return len(events)

    async def _ship_orphans(self) -> None:
        while self._orphans:
            orphan, count, _ = self._orphans[0]
            for path in list(orphan.segments):
                await self._ship(path, adopted=True)
                path.unlink(missing_ok=True)
                orphan.segments.remove(path)
            if self._owner_gone is not None:
                await self._bounded(self._owner_gone(orphan.owner))
            orphan.forget()
            self._orphans.pop(0)
            self._confirmed(count)
            log.info("ledger: shipped %d usage records left by %s", count, orphan.owner)

    async def _write(self, batch: list[UsageEvent]) -> None:
        await self._bounded(self._sink.write_usage(batch))
        self._metrics.written.inc(len(batch))

    async def _bounded(self, work: Awaitable[None]) -> None:
        """``work`` on the store, which counts as down when it takes over ``write_timeout``."""
        try:
            async with asyncio.timeout(self._write_timeout):
                await work
        except TimeoutError as exc:
            raise TemporaryError(
                f"the store did not answer within {self._write_timeout:g} s"
            ) from exc

    def _claim_orphans(self) -> None:
        for orphan in self._journal.claim_orphans():
            count, first = _count_and_first(orphan.segments)
            self._orphans.append((orphan, count, first))
            self._pending += count

    def _confirmed(self, count: int) -> None:
        self._pending = max(0, self._pending - count)

    def _spooled(self) -> int:
        return sum(s.records for s in self._sealed) + sum(o[1] for o in self._orphans)

    def _lose(self, event: UsageEvent) -> None:
        self._metrics.lost.inc()
        log.error(
            "ledger: usage journal full; usage record LOST",
            extra={"lost_request_id": event.request_id, "model": event.model},
        )


def _settlement(held: dict[str, Any]) -> Settlement:
    """A settlement read back from the journal (orjson wrote its dataclasses as objects)."""
    raw = held["reservation"]
    charges = tuple(ScopeCharge(**charge) for charge in raw["charges"])
    reservation = Reservation(**{**raw, "charges": charges})
    return Settlement(reservation, int(held["tokens"]), int(held["cost_micros"]))


def _read_segment(path: Path) -> tuple[list[UsageEvent], list[Settlement]]:
    """A segment's records and settlements; a torn last line (a crash mid-write) is skipped."""
    events: list[UsageEvent] = []
    settlements: list[Settlement] = []
    try:
        lines = path.read_bytes().splitlines()
    except FileNotFoundError:
        return events, settlements
    for line in lines:
        try:
            entry = orjson.loads(line)
            usage = entry.get("u", entry)  # a legacy spool line is the bare record
            events.append(UsageEvent(**usage))
        except (orjson.JSONDecodeError, TypeError, AttributeError):
            log.warning("ledger: skipped an unreadable journal line in %s", path.name)
            continue
        held = entry.get("s")
        if held:
            settlements.append(_settlement(held))
    return events, settlements


def _count_and_first(paths: Iterable[Path]) -> tuple[int, float | None]:
    count, first = 0, None
    for path in paths:
        events, _ = _read_segment(path)
        count += len(events)
        if first is None and events:
            first = events[0].time
    return count, first


def _legacy_segment(path: Path) -> Segment:
    count, first = _count_and_first([path])
    return Segment(path, count, first)

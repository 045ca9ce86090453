"""What the usage journal costs on the request path: CPU per ``Ledger.record`` for each fsync
policy, beside a plain in-memory queue (what the ledger did before the journal), in one run.

    python bench/ledger/journal.py [--records 20000] [--always-records 2000]

CPU time (process_time) per record, so other load on the machine matters little; wall time per
record is shown too (with ``always`` it is the disk's flush latency, which CPU time hides).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import tempfile
import time
import uuid
from pathlib import Path

from prometheus_client import CollectorRegistry
from run import records as usage_records  # bench/ledger/run.py: this script's directory

from corral.clock import SystemClock
from corral.counters.port import Reservation, ScopeCharge
from corral.gateway.journal import FsyncPolicy
from corral.gateway.ledger import Ledger, LedgerMetrics
from corral.gateway.metering import Settlement, UsageEvent


class NullSink:
    async def write_usage(self, records: list[UsageEvent]) -> None:
        del records


def records(n: int) -> list[tuple[UsageEvent, Settlement]]:
    """``n`` records (as ``run.py`` makes them), each with a reservation to settle."""
    reservation = Reservation(
        id=uuid.uuid4().hex,
        backend="redis",
        charges=(ScopeCharge("key:key_bench", 0, True), ScopeCharge("team:team_b", 0, False)),
        tokens=1100,
        cost_micros=2200,
        period="2026-12",
        expires_at=time.time() + 660,
        request_id="req_x",
        model="m",
        prompt_tokens=100,
        owner="bench.1.abcd",
    )
    return [(event, Settlement(reservation, 150, 200)) for event in usage_records(n)]


async def journaled(
    policy: FsyncPolicy, batch: list[tuple[UsageEvent, Settlement]]
) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as tmp:
        ledger = Ledger(
            NullSink(),  # type: ignore[arg-type]
            Path(tmp),
            SystemClock(),
            LedgerMetrics(CollectorRegistry()),
            fsync=policy,
            interval=3600,  # no shipping while measuring: only the request path's work
            batch_size=len(batch) + 1,
        )
        await ledger.start()
        cpu, wall = time.process_time(), time.perf_counter()
        for event, settlement in batch:
            ledger.record(event, settlement)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        await ledger.stop()
    return cpu / len(batch) * 1e6, wall / len(batch) * 1e6


def in_memory(batch: list[tuple[UsageEvent, Settlement]]) -> tuple[float, float]:
    queue: collections.deque[UsageEvent] = collections.deque()
    cpu, wall = time.process_time(), time.perf_counter()
    for event, _ in batch:
        queue.append(event)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return cpu / len(batch) * 1e6, wall / len(batch) * 1e6


async def main(count: int, always_count: int) -> None:
    batch = records(count)
    print(f"{'variant':<22} {'records':>8} {'CPU µs/record':>14} {'wall µs/record':>15}")
    rows = [("in-memory queue (old)", count, *in_memory(batch))]
    for policy in (FsyncPolicy.NONE, FsyncPolicy.BATCH):
        rows.append((f"journal, fsync={policy.value}", count, *await journaled(policy, batch)))
    short = batch[:always_count]
    rows.append(
        ("journal, fsync=always", always_count, *await journaled(FsyncPolicy.ALWAYS, short))
    )
    for name, n, cpu, wall in rows:
        print(f"{name:<22} {n:>8} {cpu:>14.1f} {wall:>15.1f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--always-records", type=int, default=2_000)
    args = parser.parse_args()
    asyncio.run(main(args.records, args.always_records))

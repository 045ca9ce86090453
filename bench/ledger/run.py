"""Usage-ledger insert throughput, batched, on SQLite and PostgreSQL (bounded in count and time).

    python bench/ledger/run.py [--records 50000] [--batch 500]
PostgreSQL: the local server (127.0.0.1:5432, user postgres); a scratch database is created
and dropped.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
import uuid
from pathlib import Path

import asyncpg

from corral.gateway.metering import UsageEvent
from corral.store.migrate import upgrade
from corral.store.usage import SqlUsage


def records(n: int) -> list[UsageEvent]:
    now = time.time()
    return [
        UsageEvent(
            request_id=f"req_{uuid.uuid4().hex}",
            time=now,
            key_id="key_bench",
            team_id="team_b",
            user_id="user_b",
            model="m",
            endpoint="http://e:8000/v1",
            kind="chat/completions",
            status=200,
            prompt_tokens=100,
            completion_tokens=50,
            cost_usd=0.0001,
            estimated=False,
            latency=0.2,
            time_to_first_token=0.05,
            outcome="ok",
        )
        for _ in range(n)
    ]


async def measure(url: str, total: int, batch: int, limit_s: float) -> float:
    await upgrade(url)
    usage = SqlUsage(url)
    data = records(total)
    start = time.perf_counter()
    written = 0
    try:
        for i in range(0, total, batch):
            await usage.write_usage(data[i : i + batch])
            written += len(data[i : i + batch])
            if time.perf_counter() - start > limit_s:
                break
        elapsed = time.perf_counter() - start
    finally:
        await usage.close()
    return written / elapsed


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=50_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--seconds", type=float, default=30.0, help="stop each run after this")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}"
        rate = await measure(url, args.records, args.batch, args.seconds)
        print(f"SQLite     : {rate:9,.0f} records/s (batches of {args.batch})")
    name = f"corral_bench_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(host="127.0.0.1", user="postgres", database="postgres")
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        url = f"postgresql+asyncpg://postgres@127.0.0.1/{name}"
        rate = await measure(url, args.records, args.batch, args.seconds)
        print(f"PostgreSQL : {rate:9,.0f} records/s (batches of {args.batch})")
    finally:
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        await admin.close()


if __name__ == "__main__":
    asyncio.run(main())

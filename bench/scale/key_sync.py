"""What keeping keys in memory costs at scale: admin write latency and idle CPU, by sync mode.

Fills a fresh database (SQLite file or PostgreSQL database) with TEAMS teams, USERS users and
KEYS keys (bulk SQL, not the API: the API is what is measured), then for each sync mode runs
the real admin API in process (Starlette over httpx's ASGI transport, KeySync behind it):

- ``full``: the sync before issue 28, kept here as the baseline — every admin write and every
  2 s tick reload every active key (and every limit);
- ``incremental``: the sync now — a write applies the changes after the last version seen,
  and the loop looks at the change log once a second.

Reports p50/p95 of admin writes (key create, team create alternating) and the process CPU used
while idle with the sync loops running (client side: the PostgreSQL server's own CPU is not in it).

    python bench/scale/key_sync.py [--keys 10000] [--writes 100] [--idle 20] [--db sqlite postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx
from sqlalchemy import insert

from corral.admin.app import build_admin_app
from corral.clock import SystemClock
from corral.composition.quotas import apply_limit_changes, refresh_limits
from corral.counters.limits import Limits
from corral.gateway.quotas import LimitBook
from corral.principals import KeyDirectory, Role, display_key, hash_key
from corral.store.engine import open_engine
from corral.store.keysync import KeySync
from corral.store.migrate import upgrade
from corral.store.records import SYSTEM, Actor, KeyMaterial
from corral.store.sql import SqlStore
from corral.store.tables import KeyRow, TeamRow, UserRow
from corral.store.usage import SqlUsage

SECRET = b"b" * 32
ADMIN_KEY = "ck-" + "A" * 32
LEGACY_INTERVAL = 2.0
WARMUP = 4  # writes not counted: connection pools and statement caches fill


class FullReloadKeySync(KeySync):
    """The baseline: KeySync as it was before the change log — every refresh reloads all."""

    async def refresh(self) -> None:
        self.directory.replace(await self._store.active_keys(self._clock.now()))


@contextlib.asynccontextmanager
async def database(kind: str, workdir: Path) -> AsyncIterator[str]:
    """A fresh, migrated database; its URL (a PostgreSQL one is dropped afterwards)."""
    if kind == "sqlite":
        url = f"sqlite+aiosqlite:///{workdir / f'scale-{uuid.uuid4().hex[:6]}.db'}"
        await upgrade(url)
        yield url
        return
    name = f"corral_bench_{uuid.uuid4().hex[:10]}"
    conn = await asyncpg.connect(host="127.0.0.1", user="postgres", database="postgres")
    await conn.execute(f'CREATE DATABASE "{name}"')
    try:
        url = f"postgresql+asyncpg://postgres@127.0.0.1/{name}"
        await upgrade(url)
        yield url
    finally:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.close()


async def fill(url: str, teams: int, users: int, keys: int) -> None:
    """Teams, users and keys in bulk, plus the platform admin whose key drives the API."""
    store = SqlStore(url)
    material = KeyMaterial(hash_key(SECRET, ADMIN_KEY), display_key(ADMIN_KEY))
    await store.bootstrap_admin(
        material, team_name="admins", user_name="admin", actor=Actor(SYSTEM, time.time())
    )
    await store.close()
    now = time.time()
    team_rows = [
        {"id": f"team_b{t:06d}", "name": f"team-{t}", "description": "", "created_at": now}
        for t in range(teams)
    ]
    user_rows = [
        {
            "id": f"user_b{u:07d}",
            "team_id": f"team_b{u % teams:06d}",
            "name": f"user {u}",
            "email": f"u{u}@example.com",
            "role": Role.DEVELOPER.value,
            "created_at": now,
        }
        for u in range(users)
    ]
    key_rows = [
        {
            "id": f"key_b{k:08d}",
            "key_hash": hash_key(SECRET, f"ck-bench-key-{k:012d}"),
            "display": "ck-…0000",
            "team_id": f"team_b{(k % users) % teams:06d}",
            "user_id": f"user_b{k % users:07d}",
            "name": f"key {k}",
            "allowed_models": None,
            "created_at": now,
            "created_by": "bench",
        }
        for k in range(keys)
    ]
    engine = open_engine(url)
    async with engine.begin() as conn:
        for table, rows in ((TeamRow, team_rows), (UserRow, user_rows), (KeyRow, key_rows)):
            for start in range(0, len(rows), 5_000):
                await conn.execute(insert(table), rows[start : start + 5_000])
    await engine.dispose()


async def admin_writes(url: str, mode: str, writes: int) -> list[float]:
    """Seconds per admin write (key create and team create, alternating), as a client sees it."""
    store, clock = SqlStore(url), SystemClock()
    sync_type = FullReloadKeySync if mode == "full" else KeySync
    sync = sync_type(store, KeyDirectory(SECRET), clock)
    await sync.refresh()
    app = build_admin_app(store=store, keys=sync, clock=clock)
    headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
    took: list[float] = []
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://admin") as client:
        for n in range(-WARMUP, writes):
            tag = f"{mode}-{n}-{uuid.uuid4().hex[:6]}"
            started = time.perf_counter()
            if n % 2:
                answer = await client.post("/teams", json={"name": tag}, headers=headers)
            else:
                answer = await client.post("/keys", json={"name": tag}, headers=headers)
            assert answer.status_code == 201, answer.text
            if n >= 0:
                took.append(time.perf_counter() - started)
    await store.close()
    return took


async def idle_cpu(url: str, mode: str, seconds: float) -> tuple[float, int]:
    """CPU seconds per wall second while the key and limit sync loops run with no traffic."""
    store, usage, clock = SqlStore(url), SqlUsage(url), SystemClock()
    interval = LEGACY_INTERVAL if mode == "full" else 1.0
    sync_type = FullReloadKeySync if mode == "full" else KeySync
    sync = sync_type(store, KeyDirectory(SECRET), clock, interval=interval)
    await sync.start()
    book = LimitBook(Limits(), Limits())
    version = await refresh_limits(book, usage)

    async def limits_loop() -> None:
        nonlocal version
        while True:
            await asyncio.sleep(interval)
            if mode == "full":
                version = await refresh_limits(book, usage)
            else:
                version = await apply_limit_changes(book, usage, version)

    loop = asyncio.create_task(limits_loop())
    cpu, wall = time.process_time(), time.monotonic()
    await asyncio.sleep(seconds)
    used = (time.process_time() - cpu) / (time.monotonic() - wall)
    loop.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await loop
    loaded = len(sync.directory)
    await sync.stop()
    await store.close()
    await usage.close()
    return used, loaded


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[round(q) - 1]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--keys", type=int, default=10_000)
    parser.add_argument("--teams", type=int, default=200)
    parser.add_argument("--users", type=int, default=2_000)
    parser.add_argument("--writes", type=int, default=100)
    parser.add_argument("--idle", type=float, default=20.0, help="Seconds of idle per mode.")
    parser.add_argument("--db", nargs="+", default=["sqlite", "postgres"])
    parser.add_argument("--mode", nargs="+", default=["full", "incremental"])
    args = parser.parse_args()
    print(f"{args.keys} keys, {args.users} users, {args.teams} teams; {args.writes} writes/mode")
    print(f"{'db':<9} {'mode':<12} {'write p50':>10} {'write p95':>10} {'idle CPU':>9} keys")
    with tempfile.TemporaryDirectory() as workdir:
        for kind in args.db:
            async with database(kind, Path(workdir)) as url:
                await fill(url, args.teams, args.users, args.keys)
                for mode in args.mode:
                    took = await admin_writes(url, mode, args.writes)
                    cpu, loaded = await idle_cpu(url, mode, args.idle)
                    p50, p95 = percentile(took, 50) * 1e3, percentile(took, 95) * 1e3
                    print(f"{kind:<9} {mode:<12} {p50:>8.1f}ms {p95:>8.1f}ms {cpu:>8.2%} {loaded}")


if __name__ == "__main__":
    asyncio.run(main())

"""A stand-in for a second gateway process: a KeySync of its own, reporting whether a key works.

Usage: python key_watcher.py DATABASE_URL DATA_DIR < key. Prints "ok" or "refused" each time
the answer changes (checked every 50 ms), until killed. CORRAL_SECRET_KEY must be set.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from corral.clock import SystemClock
from corral.principals import KeyDirectory
from corral.store.keysync import KeySync
from corral.store.secret import load_server_secret
from corral.store.sql import SqlStore


async def watch(db_url: str, data_dir: Path, key: str) -> None:
    store, clock = SqlStore(db_url), SystemClock()
    sync = KeySync(store, KeyDirectory(load_server_secret(data_dir)), clock)
    await sync.start()
    works: bool | None = None
    try:
        while True:
            now_works = sync.lookup(key, clock.now()) is not None
            if now_works is not works:
                works = now_works
                print("ok" if works else "refused", flush=True)
            await asyncio.sleep(0.05)
    finally:
        await sync.stop()
        await store.close()


if __name__ == "__main__":
    asyncio.run(watch(sys.argv[1], Path(sys.argv[2]), sys.stdin.readline().strip()))

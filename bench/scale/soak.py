"""Does the gateway's memory stay flat? RSS of a gateway process across N proxied requests.

The gateway runs in its own process the way `corral up` wires it for a fake model: the
FakeEngine in process as the model's upstream, admission limits on (in-process counters) and
every request metered to a SQLite ledger. A client here sends N chat completions (C at a time,
spread over KEYS keys), and reads the gateway's RSS from /proc after the warm-up and at each
tenth of the run. Reports RSS after warm-up, at the end, the change in percent and the slope
in bytes per request (a least-squares fit over the samples after warm-up).

    python bench/scale/soak.py [--requests 200000] [--warmup 20000] [--concurrency 8] [--keys 100]
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp

from corral.catalog import FakeEngineConfig, ModelSpec
from corral.clock import SystemClock
from corral.composition.platform import Platform, running_platform
from corral.composition.serving import ServerThread
from corral.counters.limits import Limits
from corral.counters.local import LocalCounters
from corral.gateway.quotas import LimitBook, Quotas
from corral.principals import KeyDirectory, Principal, Role
from corral.settings import CorralSettings, LoggingSettings
from corral.store.migrate import upgrade
from corral.store.usage import SqlUsage

SECRET = b"soak-secret"
BODY = {"model": "m", "messages": [{"role": "user", "content": "hello there"}], "max_tokens": 8}
HIGH = Limits(rpm=10**9, tpm=10**12, max_concurrent=10**6, monthly_budget_usd=10**9)


def key_of(n: int) -> str:
    return f"ck-soak-key-{n:012d}-abcdefgh"


def serve(data_dir: Path, keys: int) -> None:
    """Child process: a gateway with a fake model and metering on, until terminated."""
    directory = KeyDirectory(SECRET)
    for n in range(keys):
        directory.add(
            directory.hash(key_of(n)),
            Principal(key_id=f"key_{n}", role=Role.DEVELOPER, team_id=f"team_{n % 10}"),
        )
    spec = ModelSpec(name="m", engine=FakeEngineConfig(tokens=4))
    settings = CorralSettings(
        models=[spec], data_dir=data_dir, logging=LoggingSettings(access_log=False)
    )
    url = f"sqlite+aiosqlite:///{data_dir / 'corral.db'}"
    asyncio.run(upgrade(url))

    @asynccontextmanager
    async def factory() -> AsyncIterator[Platform]:
        usage = SqlUsage(url)
        quotas = Quotas(LocalCounters(), LimitBook(HIGH, HIGH), SystemClock())
        try:
            async with running_platform(
                settings, keys=directory, quotas=quotas, usage_sink=usage
            ) as platform:
                yield platform
        finally:
            await usage.close()

    with ServerThread(factory) as server:
        (data_dir / "port").write_text(str(server.port))
        while True:
            time.sleep(3600)


def rss(pid: int) -> int:
    """Resident set size of ``pid`` in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


async def drive(url: str, requests: int, concurrency: int, keys: int, start: int) -> None:
    """Send ``requests`` chat completions, ``concurrency`` at a time, round-robin over keys."""
    queue = iter(range(start, start + requests))
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(url, connector=connector) as session:

        async def worker() -> None:
            for n in queue:
                headers = {"Authorization": f"Bearer {key_of(n % keys)}"}
                async with session.post("/v1/chat/completions", json=BODY, headers=headers) as r:
                    await r.read()
                    if r.status != 200:
                        raise RuntimeError(f"request {n}: {r.status} {await r.text()}")

        await asyncio.gather(*(worker() for _ in range(concurrency)))


def slope(points: list[tuple[int, int]]) -> float:
    """Least-squares bytes per request over (requests sent, RSS) samples."""
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    var = sum((x - mx) ** 2 for x, _ in points)
    return sum((x - mx) * (y - my) for x, y in points) / var if var else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=200_000)
    parser.add_argument("--warmup", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--keys", type=int, default=100)
    parser.add_argument("--samples", type=int, default=10)
    parser.add_argument("--serve", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.keys)
        return
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        cmd = [sys.executable, __file__, "--serve", str(data), "--keys", str(args.keys)]
        child = subprocess.Popen(cmd)
        try:
            deadline = time.monotonic() + 60
            while not (data / "port").exists() or not (data / "port").read_text():
                if time.monotonic() > deadline or child.poll() is not None:
                    raise RuntimeError("the gateway process did not start")
                time.sleep(0.1)
            url = f"http://127.0.0.1:{(data / 'port').read_text()}"
            asyncio.run(drive(url, args.warmup, args.concurrency, args.keys, 0))
            points = [(0, rss(child.pid))]
            step = max(1, args.requests // args.samples)
            started = time.monotonic()
            for done in range(step, args.requests + 1, step):
                asyncio.run(drive(url, step, args.concurrency, args.keys, args.warmup + done))
                points.append((done, rss(child.pid)))
                print(f"{done:>9} requests  RSS {points[-1][1] / 2**20:7.1f} MiB", flush=True)
            took = time.monotonic() - started
        finally:
            child.terminate()
            child.wait(10)
    first, last = points[0][1], points[-1][1]
    print(
        f"after {args.warmup} warm-up requests: RSS {first / 2**20:.1f} MiB; after "
        f"{points[-1][0]} more ({points[-1][0] / took:.0f}/s): {last / 2**20:.1f} MiB "
        f"({(last - first) / first:+.1%}); slope {slope(points):.1f} bytes/request"
    )


if __name__ == "__main__":
    main()

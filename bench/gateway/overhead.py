"""What admission limits and metering add per request: Corral with both on vs both off.

Same layout for both: the gateway in its own process (pinned to core 0 where taskset exists),
a FakeEngine (zero delay) as the upstream in this process, and one client here sending requests
one at a time. Reports p50/p90 latency of each variant (medians of --repeats runs) and the
difference.

    python bench/gateway/overhead.py [--requests 2000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import httpx

from corral.catalog import Endpoint, ModelSpec, OpenAIEngine
from corral.clock import SystemClock
from corral.composition.platform import Platform, running_platform
from corral.composition.serving import ServerThread
from corral.counters.limits import Limits
from corral.counters.local import LocalCounters
from corral.engines.fake import FakeEngine
from corral.gateway.quotas import LimitBook, Quotas
from corral.principals import KeyDirectory, Principal, Role, new_api_key
from corral.settings import CorralSettings, LoggingSettings
from corral.store.migrate import upgrade
from corral.store.usage import SqlUsage

BODY = {"model": "m", "messages": [{"role": "user", "content": "hello there"}], "max_tokens": 16}
HIGH = Limits(rpm=10**9, tpm=10**12, max_concurrent=10**6, monthly_budget_usd=10**9)


def gateway(upstream: str, key: str, data_dir: Path, on: bool) -> ServerThread:
    keys = KeyDirectory(b"bench-secret")
    keys.add(keys.hash(key), Principal(key_id="key_b", role=Role.DEVELOPER, team_id="team_b"))
    spec = ModelSpec(name="m", engine=OpenAIEngine(endpoints=[Endpoint(url=upstream)]))
    settings = CorralSettings(
        models=[spec], data_dir=data_dir, logging=LoggingSettings(access_log=False)
    )
    url = f"sqlite+aiosqlite:///{data_dir / 'corral.db'}"

    @asynccontextmanager
    async def factory() -> AsyncIterator[Platform]:
        quotas = Quotas(LocalCounters(), LimitBook(HIGH, HIGH), SystemClock()) if on else None
        usage = SqlUsage(url) if on else None
        try:
            async with running_platform(
                settings, keys=keys, quotas=quotas, usage_sink=usage
            ) as platform:
                yield platform
        finally:
            if usage is not None:
                await usage.close()

    if on:
        asyncio.run(upgrade(url))
    return ServerThread(factory)


def run(url: str, key: str, requests: int) -> list[float]:
    headers = {"Authorization": f"Bearer {key}"}
    timings = []
    with httpx.Client(base_url=url, headers=headers, timeout=10) as client:
        for _ in range(200):  # warm up connections and caches
            client.post("/v1/chat/completions", json=BODY)
        for _ in range(requests):
            start = time.perf_counter()
            response = client.post("/v1/chat/completions", json=BODY)
            timings.append(time.perf_counter() - start)
            assert response.status_code == 200, response.text
    return timings


def serve(variant: str, upstream: str, key: str, data_dir: Path, port_file: Path) -> None:
    """Child process: run one gateway variant until terminated."""
    with gateway(upstream, key, data_dir, variant == "on") as server:
        port_file.write_text(str(server.port))
        while True:
            time.sleep(3600)


@contextmanager
def child(variant: str, upstream: str, key: str, data_dir: Path) -> Iterator[str]:
    port_file = data_dir / "port"
    pin = ["taskset", "-c", "0"] if shutil.which("taskset") else []
    args = [sys.executable, __file__, "--serve", variant, "--upstream", upstream, "--key", key]
    proc = subprocess.Popen([*pin, *args, "--data", str(data_dir)])
    try:
        deadline = time.monotonic() + 30
        while not port_file.exists() or not port_file.read_text():
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("the gateway process did not start")
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port_file.read_text()}"
    finally:
        proc.terminate()
        proc.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--serve", choices=["on", "off"], help=argparse.SUPPRESS)
    parser.add_argument("--upstream", help=argparse.SUPPRESS)
    parser.add_argument("--key", help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.upstream, args.key, args.data, args.data / "port")
        return
    if shutil.which("taskset"):
        os.sched_setaffinity(0, {1 % (os.cpu_count() or 1)})
    engine = FakeEngine(model="m")
    key = new_api_key()

    @asynccontextmanager
    async def upstream() -> AsyncIterator[Platform]:
        await engine.start()
        try:
            async with running_platform(CorralSettings(), keys=KeyDirectory(b"x")) as p:
                yield p
        finally:
            await engine.stop()

    results: dict[str, list[tuple[float, float]]] = {"off": [], "on": []}
    with ServerThread(upstream), tempfile.TemporaryDirectory() as tmp:
        for repeat in range(args.repeats):
            for variant in ("off", "on"):
                data_dir = Path(tmp) / f"{variant}-{repeat}"
                data_dir.mkdir()
                with child(variant, engine.base_url, key, data_dir) as url:
                    timings = run(url, key, args.requests)
                q = statistics.quantiles(timings, n=10)
                results[variant].append((statistics.median(timings), q[8]))
    p50 = {v: statistics.median(r[0] for r in rs) * 1000 for v, rs in results.items()}
    p90 = {v: statistics.median(r[1] for r in rs) * 1000 for v, rs in results.items()}
    print(f"limits+metering off: p50 {p50['off']:.3f} ms  p90 {p90['off']:.3f} ms")
    print(f"limits+metering on : p50 {p50['on']:.3f} ms  p90 {p90['on']:.3f} ms")
    print(f"added p50: {p50['on'] - p50['off']:+.3f} ms  (medians of {args.repeats} runs)")


if __name__ == "__main__":
    main()

"""Load for the gateway benchmark: wrk for whole answers, a uvloop/aiohttp client for streams.

Each load run also reads the CPU time the target process spent meanwhile, so a cell reports the
CPU per request and per relayed SSE event: a measure that holds on a machine busy with other
work, where wall-clock throughput does not.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import uvloop

HERE = Path(__file__).resolve().parent
CORES = os.cpu_count() or 1
TARGET_CORE = "0"
LOAD_CORE = "1" if CORES > 1 else "0"
TICK = os.sysconf("SC_CLK_TCK")


@dataclass
class Cell:
    """One load run (or the median of several) against one target."""

    target: str
    mode: str  # plain | stream | whole | paced
    concurrency: int
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    errors: int
    events_per_s: float = 0.0
    ttfb_p50_ms: float = 0.0
    ttfb_p99_ms: float = 0.0
    cpu_us_per_request: float = 0.0
    cpu_us_per_event: float = 0.0
    share: float = 0.0  # of the relay's req/s, median of the per-repeat shares
    cpu_share: float = 0.0  # the relay's CPU per request over this target's: the share on a core
    streams: int = 0  # streams completed (stream modes)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def run_wrk(url: str, key: str, model: str, concurrency: int, seconds: float, pid: int) -> Cell:
    env = {**os.environ, "BENCH_KEY": key, "BENCH_MODEL": model}
    cmd = [
        "taskset",
        "-c",
        LOAD_CORE,
        "wrk",
        "-t1",
        f"-c{concurrency}",
        f"-d{seconds:g}s",
        "--latency",
        "-s",
        str(HERE / "post.lua"),
        f"{url}/v1/chat/completions",
    ]
    cpu = cpu_seconds(pid)
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True).stdout
    cpu = cpu_seconds(pid) - cpu
    line = next(x for x in out.splitlines() if x.startswith("JSON "))
    data = json.loads(line[5:])
    return Cell(
        target="",
        mode="plain",
        concurrency=concurrency,
        rps=data["requests"] / (data["duration_us"] / 1e6),
        p50_ms=data["p50_us"] / 1000,
        p90_ms=data["p90_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        errors=data["errors"] + data["non2xx"],
        cpu_us_per_request=1e6 * cpu / max(1, data["requests"]),
    )


async def _streams(
    url: str, key: str, body: bytes, concurrency: int, seconds: float
) -> tuple[Cell, int]:
    """The cell, and how many SSE events the client read."""
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    latencies: list[float] = []
    ttfbs: list[float] = []
    events = 0
    errors = 0
    stop_at = time.perf_counter() + seconds

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal events, errors
        while time.perf_counter() < stop_at:
            start = time.perf_counter()
            first = None
            try:
                async with session.post(
                    f"{url}/v1/chat/completions", data=body, headers=headers
                ) as r:
                    if r.status != 200:
                        errors += 1
                        await r.read()
                        continue
                    async for chunk in r.content.iter_any():
                        if first is None:
                            first = time.perf_counter()
                        events += chunk.count(b"data:")
            except aiohttp.ClientError:
                errors += 1
                continue
            end = time.perf_counter()
            latencies.append(end - start)
            ttfbs.append((first or end) - start)

    started = time.perf_counter()
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    q = _percentiles(latencies)
    t = _percentiles(ttfbs)
    cell = Cell(
        target="",
        mode="stream",
        concurrency=concurrency,
        rps=len(latencies) / elapsed,
        streams=len(latencies),
        p50_ms=q[49] * 1000,
        p90_ms=q[89] * 1000,
        p99_ms=q[98] * 1000,
        errors=errors,
        events_per_s=events / elapsed,
        ttfb_p50_ms=t[49] * 1000,
        ttfb_p99_ms=t[98] * 1000,
    )
    return cell, events


def _percentiles(values: list[float]) -> list[float]:
    return statistics.quantiles(values, n=100) if len(values) > 1 else [0.0] * 99


def run_streams(url: str, key: str, model: str, concurrency: int, seconds: float, pid: int) -> Cell:
    os.sched_setaffinity(0, {int(LOAD_CORE)})
    body = json.dumps(
        {
            "model": model,
            "messages": [{"role": "user", "content": "Say hello in one short sentence."}],
            "max_tokens": 16,
            "stream": True,
        }
    ).encode()
    cpu = cpu_seconds(pid)
    cell, events = uvloop.run(_streams(url, key, body, concurrency, seconds))
    cpu = cpu_seconds(pid) - cpu
    cell.cpu_us_per_event = 1e6 * cpu / max(1, events)
    cell.cpu_us_per_request = 1e6 * cpu / max(1, cell.streams)
    return cell


def median_cell(cells: list[Cell]) -> Cell:
    """The median of every measure over repeated runs of one cell."""

    def med(name: str) -> float:
        return float(statistics.median(getattr(c, name) for c in cells))

    first = cells[0]
    return Cell(
        first.target,
        first.mode,
        first.concurrency,
        med("rps"),
        med("p50_ms"),
        med("p90_ms"),
        med("p99_ms"),
        sum(c.errors for c in cells),
        med("events_per_s"),
        med("ttfb_p50_ms"),
        med("ttfb_p99_ms"),
        med("cpu_us_per_request"),
        med("cpu_us_per_event"),
        med("share"),
        med("cpu_share"),
    )

"""Reserve + settle throughput and latency for each Counters backend (bounded loops and time)."""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid

from corral.counters import AdmissionRequest, Admitted, BudgetPeriod, Counters, Limits, Scope
from corral.counters.local import LocalCounters
from corral.counters.redis import RedisCounters

LIMITS = Limits(rpm=10**9, tpm=10**12, max_concurrent=10**6, monthly_budget_usd=10**9)


def request(i: int) -> AdmissionRequest:
    return AdmissionRequest(
        scopes=(Scope("key", f"k{i % 100}", LIMITS), Scope("team", f"t{i % 10}", LIMITS)),
        tokens=1200,
        cost_micros=900,
        period=BudgetPeriod("2030-01", 1_893_456_000.0, 1_896_134_400.0),
    )


async def sequential(counters: Counters, count: int, budget_s: float) -> tuple[int, float, float]:
    """One caller: (pairs done, pairs per second, p50 reserve+settle in microseconds)."""
    latencies: list[float] = []
    started = time.perf_counter()
    for i in range(count):
        t0 = time.perf_counter()
        decision = await counters.reserve(request(i), time.time())
        assert isinstance(decision, Admitted)
        await counters.settle(decision.reservation, 800, 600, time.time())
        latencies.append(time.perf_counter() - t0)
        if t0 - started > budget_s:
            break
    elapsed = time.perf_counter() - started
    return len(latencies), len(latencies) / elapsed, statistics.median(latencies) * 1e6


async def concurrent(counters: Counters, count: int, callers: int) -> float:
    """``callers`` coroutines sharing ``count`` pairs: pairs per second."""

    async def worker(offset: int) -> None:
        for i in range(offset, count, callers):
            decision = await counters.reserve(request(i), time.time())
            assert isinstance(decision, Admitted)
            await counters.settle(decision.reservation, 800, 600, time.time())

    started = time.perf_counter()
    await asyncio.gather(*(worker(n) for n in range(callers)))
    return count / (time.perf_counter() - started)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=20_000, help="pairs per measurement (max)")
    parser.add_argument("--seconds", type=float, default=10.0, help="time limit per measurement")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--callers", type=int, default=32, help="concurrent callers")
    args = parser.parse_args()
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    backends: list[tuple[str, Counters]] = [
        ("local", LocalCounters()),
        ("redis", RedisCounters.from_url(args.redis, prefix=prefix)),
    ]
    print(
        f"{'backend':8} {'pairs':>7} {'pairs/s (1 caller)':>19} {'p50 µs':>8} "
        f"{'pairs/s (' + str(args.callers) + ' callers)':>21}"
    )
    for name, counters in backends:
        done, rate, p50 = await sequential(counters, args.count, args.seconds)
        wide = await concurrent(counters, min(args.count, max(done, 1000)), args.callers)
        print(f"{name:8} {done:>7} {rate:>19,.0f} {p50:>8.1f} {wide:>21,.0f}")
        await counters.aclose()
    await _clean(args.redis, prefix)


async def _clean(url: str, prefix: str) -> None:
    from redis.asyncio import Redis

    client = Redis.from_url(url)
    keys = [k async for k in client.scan_iter(match="{" + prefix + "}*", count=1000)]
    if keys:
        await client.delete(*keys)
    await client.aclose()


if __name__ == "__main__":
    asyncio.run(main())

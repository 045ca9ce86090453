"""Gateway workers: CPU per request with 1 and N workers on one port (Redis counters).

Throughput can only scale with cores that are free; this machine's two also run the load
generator and the upstream. What the bench shows instead is the condition for scaling: the CPU a
request costs, summed over all gateway processes, stays the same when it is spread over more
workers (nothing shared in-process, no lock convoy), and how the load spreads.

    python bench/gateway/workers.py [--workers 2] [--seconds 5] [--concurrency 32]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from load import cpu_seconds as process_cpu_seconds  # noqa: E402
from run import corral_config, free_port, process, read_key, wait_http  # noqa: E402

CORRAL = str(Path(sys.executable).with_name("corral"))


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU of these processes and their threads."""
    return sum(process_cpu_seconds(pid) for pid in pids)


def children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(c) for c in (task / "children").read_text().split()]
    return found


def measure(
    url: str, key: str, pids: list[int], concurrency: int, seconds: float
) -> dict[str, float]:
    before = {pid: cpu_seconds([pid]) for pid in pids}
    out = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{concurrency}",
            f"-d{max(1, round(seconds))}s",
            "-s",
            str(HERE / "post.lua"),
            f"{url}/v1/chat/completions",
        ],
        env={**os.environ, "BENCH_KEY": key},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    result = json.loads(out.split("JSON ", 1)[1])
    used = {pid: cpu_seconds([pid]) - before[pid] for pid in pids}
    requests = result["requests"]
    return {
        "rps": requests / (result["duration_us"] / 1e6),
        "cpu_us_per_request": 1e6 * sum(used.values()) / max(1, requests),
        "p50_ms": result["p50_us"] / 1000,
        "errors": result["errors"] + result["non2xx"],
        "busiest_worker_share": max(used.values()) / max(1e-9, sum(used.values())),
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    up_port = free_port()
    rows = []
    with (
        tempfile.TemporaryDirectory() as tmp,
        process([CORRAL, "fake-engine", "--port", str(up_port)], "0-1"),
    ):
        wait_http(f"http://127.0.0.1:{up_port}/health")
        for workers in (1, args.workers):
            port = free_port()
            upstream = f"http://127.0.0.1:{up_port}/v1"
            prefix = f"corral-bench-{uuid.uuid4().hex[:8]}:"
            cfg = corral_config(Path(tmp), upstream, port, workers=workers, redis_prefix=prefix)
            with process([CORRAL, "up", "--config", str(cfg)], "0-1") as parent:
                key = read_key(parent)
                wait_http(f"http://127.0.0.1:{port}/readyz")
                time.sleep(1)
                pids = children(parent.pid) if workers > 1 else [parent.pid]
                pids = [p for p in pids if b"spawn_main" in Path(f"/proc/{p}/cmdline").read_bytes()]
                pids = pids or [parent.pid]
                measure(f"http://127.0.0.1:{port}", key, pids, args.concurrency, 1)  # warm-up
                row = measure(f"http://127.0.0.1:{port}", key, pids, args.concurrency, args.seconds)
                rows.append((workers, row))
    print("| workers | req/s | CPU µs/request (all) | p50 ms | busiest worker's CPU | errors |")
    print("|---|---|---|---|---|---|")
    for workers, row in rows:
        print(
            f"| {workers} | {row['rps']:.0f} | {row['cpu_us_per_request']:.0f} "
            f"| {row['p50_ms']:.2f} | {100 * row['busiest_worker_share']:.0f}% "
            f"| {row['errors']:.0f} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Side-by-side gateway benchmark: upstream direct vs a minimal Python relay vs Corral.

Each target runs on its own core (taskset); load generators and the upstream share the other.
Non-streaming load comes from wrk (post.lua); streams from a small uvloop/aiohttp client.
Every cell is repeated and the median reported; results go to RESULTS.md (or --out).

    python bench/gateway/run.py                 # full run (a few minutes)
    python bench/gateway/run.py --quick --check # CI regression check (ratios, under a minute)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import uvloop

HERE = Path(__file__).resolve().parent
PY = sys.executable
CORES = os.cpu_count() or 1
TARGET_CORE = "0"
LOAD_CORE = "1" if CORES > 1 else "0"
BODY = {
    "model": "fake-chat",
    "messages": [{"role": "user", "content": "Say hello in one short sentence."}],
    "max_tokens": 16,
}


@dataclass
class Cell:
    target: str
    mode: str  # plain | stream
    concurrency: int
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    errors: int
    events_per_s: float = 0.0
    ttfb_p50_ms: float = 0.0


@dataclass
class Target:
    name: str
    url: str
    key: str
    pid: int
    idle_rss_mib: float
    results: list[Cell] = field(default_factory=list)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, deadline_s: float = 60) -> None:
    import urllib.error
    import urllib.request

    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except urllib.error.HTTPError:
            return  # it answered
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"{url} did not come up within {deadline_s} s")


def rss_mib(pid: int, field_name: str = "VmRSS") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field_name + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


@contextmanager
def process(
    args: list[str], core: str, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[str]]:
    cmd = ["taskset", "-c", core, *args] if shutil.which("taskset") else args
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    )
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def corral_config(
    data_dir: Path, upstream: str, port: int, *, workers: int = 1, redis_prefix: str = ""
) -> Path:
    """Corral in front of ``upstream`` with limits and metering on (``redis_prefix``: count
    limits in Redis under it, as several workers must)."""
    path = data_dir / f"corral-{workers}.yaml"
    redis = f"\n  redis_url: redis://127.0.0.1:6379/0\n  redis_prefix: {redis_prefix!r}"
    path.write_text(
        f"""data_dir: {data_dir / f"data-{workers}"}
server: {{host: 127.0.0.1, port: {port}, max_in_flight: 4096, workers: {workers}, drain_grace: 0}}
logging: {{access_log: false, level: warning}}
limits:{redis if redis_prefix else ""}
  # Limits on, set high enough never to refuse: the benchmark measures their cost.
  key_defaults: {{rpm: 100000000, tpm: 10000000000, max_concurrent: 100000}}
  team_defaults: {{rpm: 100000000, tpm: 10000000000, monthly_budget_usd: 1000000000}}
models:
  - name: fake-chat
    engine: {{kind: openai, endpoints: [{{url: "{upstream}"}}]}}
    pricing: {{input_per_1m: 0.5, output_per_1m: 1.5}}
"""
    )
    return path


def read_key(proc: subprocess.Popen[str], deadline_s: float = 60) -> str:
    assert proc.stdout is not None
    end = time.monotonic() + deadline_s
    seen = []
    while time.monotonic() < end:
        line = proc.stdout.readline()
        if not line:
            break
        seen.append(line)
        match = re.search(r"(ck-[A-Za-z0-9_\-]{20,})", line)
        if match:
            return match.group(1)
    raise RuntimeError("Corral did not print its bootstrap key:\n" + "".join(seen[-20:]))


def _drain(proc: subprocess.Popen[str]) -> None:
    """Keep reading a child's output so a full pipe never blocks it."""
    assert proc.stdout is not None
    for _ in proc.stdout:
        pass


def run_wrk(url: str, key: str, concurrency: int, seconds: float) -> Cell:
    env = {**os.environ, "BENCH_KEY": key}
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
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True).stdout
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
    )


async def _streams(url: str, key: str, concurrency: int, seconds: float) -> Cell:
    body = json.dumps({**BODY, "stream": True}).encode()
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
    q = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [0.0] * 99
    return Cell(
        target="",
        mode="stream",
        concurrency=concurrency,
        rps=len(latencies) / elapsed,
        p50_ms=q[49] * 1000,
        p90_ms=q[89] * 1000,
        p99_ms=q[98] * 1000,
        errors=errors,
        events_per_s=events / elapsed,
        ttfb_p50_ms=statistics.median(ttfbs) * 1000 if ttfbs else 0,
    )


def run_streams(url: str, key: str, concurrency: int, seconds: float) -> Cell:
    os.sched_setaffinity(0, {int(LOAD_CORE)})
    return uvloop.run(_streams(url, key, concurrency, seconds))


def median_cell(cells: list[Cell]) -> Cell:
    def med(name: str) -> float:
        return statistics.median(getattr(c, name) for c in cells)

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
    )


def measure(
    target: Target, levels: list[int], modes: list[str], seconds: float, repeats: int
) -> None:
    for mode in modes:
        for concurrency in levels:
            runs = []
            for _ in range(repeats):
                run = run_wrk if mode == "plain" else run_streams
                cell = run(target.url, target.key, concurrency, seconds)
                cell.target = target.name
                runs.append(cell)
            target.results.append(median_cell(runs))
            print(
                f"  {target.name:8} {mode:6} c={concurrency:<3} {target.results[-1].rps:9.0f}/s "
                f"p50 {target.results[-1].p50_ms:.3f} ms",
                flush=True,
            )


def write_report(targets: list[Target], out: Path, args: argparse.Namespace) -> str:
    direct = {(c.mode, c.concurrency): c for c in targets[0].results}
    relay = {(c.mode, c.concurrency): c for c in targets[1].results} if len(targets) > 1 else {}
    lines = [
        "# Gateway benchmark",
        "",
        f"Generated by `bench/gateway/run.py` on {time.strftime('%Y-%m-%d %H:%M UTC')}; "
        f"{CORES} cores; each target pinned to core {TARGET_CORE}, wrk/stream client and upstream "
        f"on core {LOAD_CORE}; {args.repeats} repeats of {args.seconds:g} s per cell, medians. "
        "Upstream: Corral's FakeEngine in zero-delay mode (16 tokens). Corral runs with auth, "
        "rate limits and metering on (SQLite store), access log off.",
        "",
        "| target | mode | conc | req/s | p50 ms | p90 ms | p99 ms | added p50 ms | vs relay "
        "| SSE events/s | errors | idle RSS MiB |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for target in targets:
        for c in target.results:
            base = direct[(c.mode, c.concurrency)]
            ref = relay.get((c.mode, c.concurrency))
            ratio = f"{c.rps / ref.rps:.0%}" if ref else "-"
            lines.append(
                f"| {c.target} | {c.mode} | {c.concurrency} | {c.rps:.0f} | {c.p50_ms:.3f} | "
                f"{c.p90_ms:.3f} | {c.p99_ms:.3f} | {c.p50_ms - base.p50_ms:+.3f} | {ratio} | "
                f"{c.events_per_s:.0f} | {c.errors} | {target.idle_rss_mib:.0f} |"
            )
    text = "\n".join(lines) + "\n"
    out.write_text(text)
    return text


def check(targets: list[Target], min_ratio: float) -> bool:
    relay = {(c.mode, c.concurrency): c for c in targets[1].results}
    ok = True
    for c in targets[2].results:
        ratio = c.rps / relay[(c.mode, c.concurrency)].rps
        status = "ok" if ratio >= min_ratio else "REGRESSION"
        ok &= ratio >= min_ratio
        print(
            f"check: corral/relay {c.mode} c={c.concurrency}: "
            f"{ratio:.0%} (min {min_ratio:.0%}) {status}"
        )
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--levels", default="1,16,64")
    parser.add_argument("--modes", default="plain,stream")
    parser.add_argument("--quick", action="store_true", help="CI size: 2 s cells, 1 repeat, c=16")
    parser.add_argument(
        "--check", action="store_true", help="fail when Corral/relay drops below --min-ratio"
    )
    parser.add_argument("--min-ratio", type=float, default=0.35)
    parser.add_argument("--out", type=Path, default=HERE / "RESULTS.md")
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.repeats, args.levels = 2.0, 1, "16"
        if args.out == HERE / "RESULTS.md":
            args.out = Path(tempfile.gettempdir()) / "corral-bench-quick.md"
    if not shutil.which("wrk"):
        print("wrk is not installed: apt-get install -y wrk", file=sys.stderr)
        return 2
    levels = [int(x) for x in args.levels.split(",")]
    modes = args.modes.split(",")
    up_port, relay_port, corral_port = free_port(), free_port(), free_port()
    upstream = f"http://127.0.0.1:{up_port}/v1"
    corral_bin = str(Path(PY).with_name("corral"))
    targets: list[Target] = []
    with (
        tempfile.TemporaryDirectory() as tmp,
        process([corral_bin, "fake-engine", "--port", str(up_port)], LOAD_CORE) as up,
    ):
        wait_http(f"http://127.0.0.1:{up_port}/health")
        direct = Target("direct", f"http://127.0.0.1:{up_port}", "", up.pid, rss_mib(up.pid))
        targets.append(direct)
        print("measuring the upstream directly", flush=True)
        measure(direct, levels, modes, args.seconds, args.repeats)
        with process(
            [PY, str(HERE / "minimal_relay.py"), upstream, str(relay_port)], TARGET_CORE
        ) as rel:
            wait_http(f"http://127.0.0.1:{relay_port}/")
            relay = Target("relay", f"http://127.0.0.1:{relay_port}", "", rel.pid, rss_mib(rel.pid))
            targets.append(relay)
            print("measuring the minimal relay", flush=True)
            measure(relay, levels, modes, args.seconds, args.repeats)
        config = corral_config(Path(tmp), upstream, corral_port)
        with process([corral_bin, "up", "--config", str(config)], TARGET_CORE) as cor:
            key = read_key(cor)
            threading.Thread(target=_drain, args=(cor,), daemon=True).start()
            wait_http(f"http://127.0.0.1:{corral_port}/readyz")
            time.sleep(0.5)
            corral = Target(
                "corral", f"http://127.0.0.1:{corral_port}", key, cor.pid, rss_mib(cor.pid)
            )
            targets.append(corral)
            print("measuring Corral", flush=True)
            measure(corral, levels, modes, args.seconds, args.repeats)
    print(write_report(targets, args.out, args))
    if args.check and not check(targets, args.min_ratio):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

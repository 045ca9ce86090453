"""A burst of concurrent requests against a tiny team budget: does the budget hold?

Starts a FakeEngine, then for each case a real `corral up` (1, 2 or 4 worker processes on one
port, counters in Redis under a fresh prefix) whose team budget is $0.001 — about 27 requests'
worth at the model's price — and sends every request of the burst at once, each on its own
connection so the kernel spreads them over the workers. Reports what the clients got, what the
ledger charged once the gateway has shut down, and how often the gateway logged that the shared
counters were unavailable (it never should while Redis is up).

    python bench/counters/burst.py [--workers 1 2 4] [--bursts 200 1000] [--in-process]
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sqlite3
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import aiohttp

# The processes the end-to-end tests start, started the same way here.
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests"))

from support.processes import CorralProcess, corral_up, fake_engine, free_port
from support.redis_keys import REDIS_URL, forget

BUDGET_USD = 0.001
BODY = {"model": "fake-chat", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 16}


@dataclass(frozen=True)
class Case:
    counters: str  # redis | in-process
    workers: int
    burst: int


@dataclass(frozen=True)
class Result:
    case: Case
    statuses: Counter[int]
    causes: Counter[str]
    """What each 503 said, counted."""
    ledger_answered: int
    ledger_spend: float
    unavailable_lines: int
    seconds: float


def config(data: Path, case: Case, port: int, upstream: str, prefix: str) -> Path:
    shared = (
        f"\n  redis_url: {REDIS_URL}\n  redis_prefix: {prefix}" if case.counters == "redis" else ""
    )
    path = data / "corral.yaml"
    path.write_text(
        f"""data_dir: {data / "data"}
server: {{port: {port}, workers: {case.workers}, max_in_flight: 4096, drain_grace: 0}}
logging: {{access_log: false}}
limits:{shared}
  team_defaults: {{monthly_budget_usd: {BUDGET_USD}}}
models:
  - name: fake-chat
    engine: {{kind: openai, endpoints: [{{url: "{upstream}"}}]}}
    pricing: {{input_per_1m: 1.0, output_per_1m: 2.0}}
"""
    )
    return path


def _cause(body: bytes) -> str:
    """What a 503 says, in a word: which limit of the gateway or the counters answered it."""
    text = body.decode(errors="replace")
    for word, cause in (("busy", "pool busy"), ("only the shared", "Redis call failed")):
        if word in text:
            return cause
    return "gateway in-flight limit" if "concurrent requests" in text else text[:60]


async def burst(url: str, key: str, count: int, causes: Counter[str]) -> Counter[int]:
    """``count`` requests at once, each on a new connection; the status of each."""
    connector = aiohttp.TCPConnector(limit=0, force_close=True)
    timeout = aiohttp.ClientTimeout(total=120)
    headers = {"Authorization": f"Bearer {key}"}
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        start = asyncio.Event()

        async def one() -> int:
            await start.wait()
            try:
                async with session.post(url, json=BODY, headers=headers) as response:
                    body = await response.read()
                    if response.status == 503:
                        causes[_cause(body)] += 1
                    return response.status
            except aiohttp.ClientError:
                return 0

        tasks = [asyncio.ensure_future(one()) for _ in range(count)]
        await asyncio.sleep(0)
        start.set()
        return Counter(await asyncio.gather(*tasks))


def run_case(case: Case, upstream: str) -> Result:
    with tempfile.TemporaryDirectory() as tmp:
        prefix = f"corral-burst-{uuid.uuid4().hex[:8]}"
        causes: Counter[str] = Counter()
        try:
            with corral_up(config(Path(tmp), case, free_port(), upstream, prefix)) as corral:
                key = _key(corral)
                started = time.perf_counter()
                url = f"{corral.url}/v1/chat/completions"
                statuses = asyncio.run(burst(url, key, case.burst, causes))
                seconds = time.perf_counter() - started
        finally:
            forget(prefix)
        answered, spend = _ledger(Path(tmp) / "data" / "corral.db")
    unavailable = sum("unavailable" in line for line in corral.output)
    return Result(case, statuses, causes, answered, spend, unavailable, seconds)


def _key(corral: CorralProcess) -> str:
    """The bootstrap key (with several workers it may follow readiness by a moment)."""
    end = time.monotonic() + 30
    while time.monotonic() < end:
        match = re.search(r"(ck-[A-Za-z0-9_\-]{20,})", corral.text())
        if match:
            return match.group(1)
        time.sleep(0.1)
    raise RuntimeError("corral up printed no bootstrap key:\n" + corral.text()[-2000:])


def _ledger(db: Path) -> tuple[int, float]:
    ledger = sqlite3.connect(db)
    try:
        row = ledger.execute(
            "select count(*), coalesce(sum(cost_usd), 0) from usage_records where status = 200"
        ).fetchone()
    finally:
        ledger.close()
    return int(row[0]), float(row[1])


def table(results: list[Result]) -> str:
    lines = [
        f"| counters | workers | burst | answered | refused 429 | 503 | other "
        f'| spend of ${BUDGET_USD} (ledger) | "unavailable" log lines | seconds |',
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        other = sum(n for status, n in r.statuses.items() if status not in (200, 429, 503))
        over = (r.ledger_spend - BUDGET_USD) / BUDGET_USD
        mark = f" **(+{over:.0%})**" if over > 1e-9 else ""
        why = ", ".join(f"{n} {cause}" for cause, n in r.causes.most_common())
        lines.append(
            f"| {r.case.counters} | {r.case.workers} | {r.case.burst} | {r.statuses[200]} "
            f"| {r.statuses[429]} | {r.statuses[503]}{f' ({why})' if why else ''} | {other} "
            f"| ${r.ledger_spend:.6f}{mark} | {r.unavailable_lines} | {r.seconds:.1f} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--bursts", type=int, nargs="+", default=[200, 1000])
    parser.add_argument(
        "--in-process", action="store_true", help="add a 1-worker in-process baseline"
    )
    args = parser.parse_args()
    cases = [Case("in-process", 1, b) for b in args.bursts] if args.in_process else []
    cases += [Case("redis", w, b) for w in args.workers for b in args.bursts]
    results = []
    with fake_engine() as upstream:
        for case in cases:
            results.append(run_case(case, upstream))
            print(table(results[-1:]).splitlines()[-1], flush=True)
    print()
    print(table(results))
    over = [r for r in results if r.ledger_spend > BUDGET_USD + 1e-12]
    noisy = [r for r in results if r.case.counters == "redis" and r.unavailable_lines]
    return 1 if over or noisy else 0


if __name__ == "__main__":
    raise SystemExit(main())

"""30-day usage reports over a large ledger on PostgreSQL, without and with the report indexes.

Makes a fresh database at migration 0003 (the ledger as it was: indexes on day, key and team
only), fills ROWS usage records spread over 90 days in SQL (200 teams, 2,000 users, 10,000
keys, 5 models), then times the reports the admin API and portal run, through SqlUsage.report
(median of --repeats): one team's 30 days by day and model, all teams' 30 days by team, one
developer's and one key's 30 days by day. Then migrates to head (adds the indexes), ANALYZEs
and times them again.

    python bench/scale/reports.py [--rows 3000000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid

import asyncpg

from corral.store.migrate import upgrade
from corral.store.usage import SqlUsage, UsageFilter

DAY = 86_400.0
FILL = """
INSERT INTO usage_records (request_id, time, day, key_id, team_id, user_id, model, endpoint,
    kind, status, outcome, prompt_tokens, completion_tokens, cost_usd, estimated, latency,
    time_to_first_token)
SELECT 'req_' || g, t, to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD'), 'key_' || (g % 10000),
    'team_' || (g % 200), 'user_' || (g % 2000), 'model-' || (g % 5), '/v1/chat/completions',
    'chat', 200, 'completed', 100 + g % 50, 40 + g % 30, 0.0002, false, 0.2, 0.05
FROM (SELECT g, to_timestamp($2 - g * (90 * 86400.0 / $1)) AS t
      FROM generate_series(1, $1) AS g) AS s
"""


def cases(now: float) -> dict[str, tuple[UsageFilter, tuple[str, ...]]]:
    since = now - 30 * DAY
    return {
        "one team, by day+model": (UsageFilter(since, team_id="team_7"), ("day", "model")),
        "all teams, by team": (UsageFilter(since), ("team",)),
        "one user, by day": (UsageFilter(since, user_id="user_42"), ("day",)),
        "one key, by day": (UsageFilter(since, key_ids=frozenset({"key_4242"})), ("day",)),
    }


async def timings(url: str, now: float, repeats: int) -> dict[str, float]:
    usage = SqlUsage(url)
    took: dict[str, float] = {}
    try:
        for name, (where, groups) in cases(now).items():
            runs = []
            for _ in range(repeats):
                started = time.perf_counter()
                await usage.report(where, groups)
                runs.append(time.perf_counter() - started)
            took[name] = statistics.median(runs)
    finally:
        await usage.close()
    return took


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=3_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    name = f"corral_bench_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(host="127.0.0.1", user="postgres", database="postgres")
    await admin.execute(f'CREATE DATABASE "{name}"')
    url = f"postgresql+asyncpg://postgres@127.0.0.1/{name}"
    try:
        await upgrade(url, "0003")
        now = time.time()
        conn = await asyncpg.connect(host="127.0.0.1", user="postgres", database=name)
        started = time.perf_counter()
        await conn.execute(FILL, args.rows, now)
        await conn.execute("ANALYZE usage_records")
        print(f"{args.rows} records over 90 days in {time.perf_counter() - started:.0f} s")
        before = await timings(url, now, args.repeats)
        started = time.perf_counter()
        await upgrade(url)
        await conn.execute("ANALYZE usage_records")
        print(f"indexes built in {time.perf_counter() - started:.0f} s")
        after = await timings(url, now, args.repeats)
        await conn.close()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
    print(f"{'30-day report':<26} {'before':>10} {'after':>10}")
    for case, took in before.items():
        print(f"{case:<26} {took * 1e3:>8.0f}ms {after[case] * 1e3:>8.0f}ms")


if __name__ == "__main__":
    asyncio.run(main())

"""A burst of 200 concurrent requests against a $0.001 team budget, counted in Redis by 1 and 2
gateway workers: the ledger never charges more than the budget, and Redis is never taken for
down (bench/counters/burst.py runs the same with 4 workers and 1,000 requests)."""

from __future__ import annotations

import asyncio
import re
import signal
import sqlite3
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from support.processes import corral_up, fake_engine, free_port
from support.redis_keys import forget
from support.services import redis_url

pytestmark = pytest.mark.redis

BUDGET_USD = 0.001
COST_USD = 37e-6  # reserved: 5 prompt tokens at $1/1M + 16 completion tokens at $2/1M
BURST = 200
CHAT = {"model": "fake-chat", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 16}


@pytest.fixture(scope="module")
def engine_url() -> Iterator[str]:
    with fake_engine() as url:
        yield url


@pytest.fixture
def prefix() -> Iterator[str]:
    name = f"corral-test-{uuid.uuid4().hex[:8]}"
    yield name
    forget(name)


def config(tmp_path: Path, engine_url: str, prefix: str, workers: int) -> Path:
    path = tmp_path / "corral.yaml"
    path.write_text(
        f"""data_dir: {tmp_path / "data"}
server: {{port: {free_port()}, workers: {workers}, drain_grace: 0}}
logging: {{access_log: false}}
limits:
  redis_url: {redis_url()}
  redis_prefix: {prefix}
  team_defaults: {{monthly_budget_usd: {BUDGET_USD}}}
models:
  - name: fake-chat
    engine: {{kind: openai, endpoints: [{{url: "{engine_url}"}}]}}
    pricing: {{input_per_1m: 1.0, output_per_1m: 2.0}}
"""
    )
    return path


async def burst(url: str, key: str) -> Counter[int]:
    """Every request at once, each on its own connection (the kernel spreads them)."""
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:
        headers = {"Authorization": f"Bearer {key}"}
        responses = await asyncio.gather(
            *(client.post("/v1/chat/completions", json=CHAT, headers=headers) for _ in range(BURST))
        )
    for response in responses:
        if response.status_code not in (200, 429):
            pytest.fail(f"{response.status_code}: {response.text}")
        if response.status_code == 429:
            assert response.json()["error"]["code"] == "budget_exceeded"
    return Counter(r.status_code for r in responses)


@pytest.mark.parametrize("workers", [1, 2])
def test_a_burst_never_spends_more_than_the_budget(
    tmp_path: Path, engine_url: str, prefix: str, workers: int
) -> None:
    with corral_up(config(tmp_path, engine_url, prefix, workers)) as corral:
        end = time.monotonic() + 30
        while not (key := re.search(r"(ck-[A-Za-z0-9_\-]{20,})", corral.text())):
            assert time.monotonic() < end, corral.text()
            time.sleep(0.1)
        statuses = asyncio.run(burst(corral.url, key.group(1)))
        metrics = httpx.get(f"{corral.metrics_url}/metrics", timeout=10).text
        corral.process.send_signal(signal.SIGTERM)
        assert corral.process.wait(30) == 0
    ledger = sqlite3.connect(tmp_path / "data" / "corral.db")
    try:
        answered, spend = ledger.execute(
            "select count(*), coalesce(sum(cost_usd), 0) from usage_records where status = 200"
        ).fetchone()
    finally:
        ledger.close()
    assert answered == statuses[200]
    assert spend <= BUDGET_USD + 1e-12
    # The budget was used, not refused away. Each request reserves 37 µ$ and settles at what it
    # cost (~33 µ$), so how many of the 27 possible reservations a burst gets before the first
    # settlements land varies by a request or two (26 or 27 seen on the 2-core box).
    assert spend > BUDGET_USD - 5 * COST_USD
    assert "unavailable" not in corral.text()
    assert 'corral_counters_transitions_total{state="degraded"} 0.0' in metrics

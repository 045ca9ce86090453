"""Fault tests against real processes: staggered streaming load that notes what the client saw,
and readers of what the ledger (PostgreSQL) and the counters (Redis) hold afterwards."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import re
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx
import redis

from corral.gateway.policies.quotas import month_window
from corral.store.migrate import upgrade
from support.databases import postgres_database
from support.processes import CORRAL, CorralProcess, free_port
from support.services import pg_host_port, redis_host_port, redis_url
from support.tcp_proxy import ProxyThread

RUNS = int(os.environ.get("CORRAL_CHAOS_RUNS", "3"))
"""Kill runs per fault test (CI's default keeps the suite to a few minutes; set 20+ locally)."""


def chaos_config(
    tmp_path: Path,
    name: str,
    *,
    database_url: str,
    redis_prefix: str,
    drain_timeout: float = 20,
    workers: int = 1,
    engine_url: str | None = None,
    redis: str | None = None,
) -> Path:
    """A `corral up` config on a fresh port: PostgreSQL store, Redis counters, every key limited
    (so every request holds a reservation) and priced, a streaming model."""
    engine = (
        f'{{kind: openai, endpoints: [{{url: "{engine_url}"}}]}}'
        if engine_url
        else "{kind: fake, tokens: 24, token_delay: 0.015}"
    )
    path = tmp_path / f"{name}.yaml"
    path.write_text(
        f"""data_dir: {tmp_path / "data"}
server: {{port: {free_port()}, drain_grace: 0, drain_timeout: {drain_timeout}, workers: {workers}}}
logging: {{access_log: false}}
store: {{database_url: "{database_url}", timeout: 2}}
limits:
  redis_url: {redis or redis_url()}
  redis_prefix: "{redis_prefix}"
  key_defaults: {{rpm: 1000000, max_concurrent: 10000, monthly_budget_usd: 100000}}
models:
  - name: fake-chat
    engine: {engine}
    pricing: {{input_per_1m: 0.15, output_per_1m: 0.6}}
"""
    )
    return path


@dataclass
class Seen:
    """What the client saw: request ids answered in full, and ids whose answer was cut."""

    answered: set[str] = field(default_factory=set)
    cut: set[str] = field(default_factory=set)
    answered_at: dict[str, float] = field(default_factory=dict)

    def ids(self) -> set[str]:
        return self.answered | self.cut


async def staggered_load(url: str, key: str, until: asyncio.Event, clients: int = 8) -> Seen:
    """``clients`` clients, started 50 ms apart, each sending streams (most) and whole
    answers one after another until ``until`` is set; every request id the client saw."""
    seen = Seen()
    headers = {"Authorization": f"Bearer {key}"}

    async def client(index: int) -> None:
        await asyncio.sleep(index * 0.05)
        async with httpx.AsyncClient(base_url=url, headers=headers, timeout=10) as http:
            while not until.is_set():
                stream = random.random() < 0.75
                body = {
                    "model": "fake-chat",
                    "messages": [{"role": "user", "content": f"hello {index}"}],
                    "stream": stream,
                }
                await _one(http, body, seen)

    await asyncio.gather(*(client(i) for i in range(clients)))
    return seen


async def _one(http: httpx.AsyncClient, body: dict[str, object], seen: Seen) -> None:
    request_id = None
    try:
        async with http.stream("POST", "/v1/chat/completions", json=body) as response:
            request_id = response.headers.get("x-request-id")
            whole = await _read_whole(response, streaming=bool(body["stream"]))
    except httpx.HTTPError:
        whole = False
        await asyncio.sleep(0.05)  # the gateway is gone: do not spin
    if request_id is None:
        return
    if whole:
        seen.answered.add(request_id)
        seen.answered_at[request_id] = time.monotonic()
    else:
        seen.cut.add(request_id)


async def _read_whole(response: httpx.Response, *, streaming: bool) -> bool:
    if response.status_code != 200 or not streaming:
        payload = await response.aread()
        return payload.endswith(b"}")
    done = False
    async for line in response.aiter_lines():
        done = done or line == "data: [DONE]"
    return done


@dataclass(frozen=True)
class LedgerRow:
    request_id: str
    outcome: str
    estimated: bool
    cost_usd: float
    key_id: str


def ledger_rows(database_url: str) -> list[LedgerRow]:
    """Every row of the usage ledger (a list, so a duplicate would show)."""

    async def read() -> list[LedgerRow]:
        conn = await asyncpg.connect(database_url.replace("+asyncpg", ""))
        try:
            rows = await conn.fetch(
                "SELECT request_id, outcome, estimated, cost_usd, key_id FROM usage_records"
            )
        finally:
            await conn.close()
        return [LedgerRow(*row) for row in rows]

    return asyncio.run(read())


@dataclass(frozen=True)
class CounterState:
    spent_micros: int
    held_micros: int
    reservations: int
    in_flight: int


def counter_state(prefix: str, key_id: str) -> CounterState:
    """The month's spend and holds of ``key_id`` in Redis, its reservations and slots."""
    client = redis.Redis(*redis_host_port())
    try:
        period = month_window(time.time()).key
        budget = client.hgetall(f"{{{prefix}}}:b:key:{key_id}:{period}")
        reservations = client.hlen(f"{{{prefix}}}:res")
        in_flight = int(client.get(f"{{{prefix}}}:c:key:{key_id}") or 0)
    finally:
        client.close()
    return CounterState(
        int(budget.get(b"spent", 0)), int(budget.get(b"held", 0)), int(reservations), in_flight
    )


def held_reservations(prefix: str) -> list[bytes]:
    """The reservations Redis still holds (their JSON), for a failure's message."""
    client = redis.Redis(*redis_host_port())
    try:
        return list(client.hgetall(f"{{{prefix}}}:res").values())
    finally:
        client.close()


def micros(rows: list[LedgerRow]) -> int:
    """The ledger's spend in micro-dollars, summed as a report sums it (then rounded)."""
    return round(sum(row.cost_usd for row in rows) * 1_000_000)


def recovery_problem(url: str, prefix: str, seen: Seen) -> str | None:
    """What is not yet as it must be after a crash and restart; None once everything is: every
    request the client saw has a record, and the counters hold nothing and equal the ledger."""
    rows = ledger_rows(url)
    ids = {row.request_id for row in rows}
    missing = seen.ids() - ids
    if missing:
        answered = len(missing & seen.answered)
        return f"{len(missing)} requests the client saw have no record ({answered} answered)"
    (key_id,) = {row.key_id for row in rows if row.request_id in seen.ids()}
    state = counter_state(prefix, key_id)
    spent = micros([row for row in rows if row.key_id == key_id])
    if (state.held_micros, state.reservations, state.in_flight) != (0, 0, 0):
        return f"counters still hold reservations: {state}"
    if state.spent_micros != spent:
        return f"counters spent {state.spent_micros} µ$, the ledger {spent} µ$"
    return None


@contextlib.contextmanager
def fake_engine_process() -> Iterator[str]:
    """A FakeEngine in its own process (an external engine several gateways share); its URL."""
    port = free_port()
    process = subprocess.Popen(
        [CORRAL, "fake-engine", "--port", str(port), "--tokens", "24", "--token-delay", "0.015"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert wait_until(lambda: _answers(f"http://127.0.0.1:{port}/health"), 30)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        process.terminate()
        process.wait(10)


def _answers(url: str) -> bool:
    try:
        httpx.get(url, timeout=1)
    except httpx.HTTPError:
        return False
    return True


def worker_pids(parent: int) -> set[int]:
    """The gateway workers `corral up` started (spawned children, not the resource tracker)."""
    pids = set()
    for child in Path(f"/proc/{parent}/task/{parent}/children").read_text().split():
        with contextlib.suppress(OSError):
            if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes():
                pids.add(int(child))
    return pids


def wait_until(check: Callable[[], bool], timeout: float, step: float = 0.2) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        with contextlib.suppress(Exception):
            if check():
                return True
        time.sleep(step)
    return check()


def bootstrap_key(gateway: CorralProcess) -> str:
    """The admin key the first start prints (just after it turns ready)."""
    assert wait_until(lambda: gateway.key is not None or _key_in(gateway), 10), gateway.text()
    assert gateway.key is not None
    return gateway.key


def _key_in(gateway: CorralProcess) -> bool:
    match = re.search(r"(ck-[A-Za-z0-9_\-]{20,})", gateway.text())
    gateway.key = match.group(1) if match else None
    return gateway.key is not None


@contextlib.contextmanager
def proxied_postgres() -> Iterator[tuple[str, str, ProxyThread]]:
    """A fresh, migrated PostgreSQL database and a proxy before it that can stall or cut:
    the direct URL, the URL through the proxy, and the proxy."""
    host, port = pg_host_port()
    with postgres_database() as url, ProxyThread(host, port) as proxy:
        asyncio.run(upgrade(url))
        proxied = url.replace(f"@{host}:{port}/", f"@127.0.0.1:{proxy.proxy.port}/")
        assert proxied != url, url  # the store must really go through the proxy
        yield url, proxied, proxy


@contextlib.contextmanager
def redis_prefix() -> Iterator[str]:
    """A Redis key prefix of its own, its keys deleted afterwards."""
    prefix = f"corral-chaos-{uuid.uuid4().hex[:8]}"
    try:
        yield prefix
    finally:
        delete_prefix(prefix)


def delete_prefix(prefix: str) -> None:
    client = redis.Redis(*redis_host_port())
    try:
        keys = list(client.scan_iter(f"{{{prefix}}}:*"))
        if keys:
            client.delete(*keys)
    finally:
        client.close()

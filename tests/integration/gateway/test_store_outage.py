"""PostgreSQL unreachable under load: serving goes on, usage waits in the journal, and every
request is recorded exactly once after the database comes back."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from corral.store.migrate import upgrade
from corral.store.usage import SqlUsage, UsageRow
from support.databases import postgres_database
from support.gateway_harness import start_gateway
from support.services import pg_host_port
from support.tcp_proxy import CuttableProxy

pytestmark = pytest.mark.postgres
CHAT = {"model": "fake-chat", "messages": [{"role": "user", "content": "one two"}]}


def test_outage_spools_and_replays_without_loss_or_duplicates(tmp_path: Path) -> None:
    with postgres_database() as direct_url:
        asyncio.run(upgrade(direct_url))
        host, port = pg_host_port()
        proxy = CuttableProxy(host, port)

        def proxied() -> str:  # known once the proxy listens, on the server's loop
            return direct_url.replace(f"@{host}:{port}/", f"@127.0.0.1:{proxy.port}/")

        server, _, key = start_gateway(
            data_dir=tmp_path, usage_url=proxied, before_start=proxy.start
        )
        ids: list[str] = []
        with server, httpx.Client(timeout=10) as client:
            headers = {"Authorization": f"Bearer {key}"}

            def burst(n: int) -> None:
                for _ in range(n):
                    r = client.post(f"{server.url}/v1/chat/completions", json=CHAT, headers=headers)
                    assert r.status_code == 200
                    ids.append(r.headers["x-request-id"])

            burst(50)
            server.run(proxy.cut())
            burst(100)  # the store is unreachable: serving goes on
            time.sleep(1.5)  # the ledger tries, fails, keeps the records in its journal
            assert list((tmp_path / "spool").rglob("*.wal"))
            pending = server.platform.registry.get_sample_value("corral_ledger_pending_records")
            assert pending is not None
            assert pending >= 100
            server.run(proxy.restore())
            burst(50)
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline and _count(direct_url) < len(ids):
                time.sleep(0.2)
            server.run(proxy.cut())  # every record is in; shut the proxy before the server
        assert _count(direct_url) == len(ids) == 200
        assert _distinct(direct_url) == set(ids)


def _count(url: str) -> int:
    async def read() -> int:
        usage = SqlUsage(url)
        try:
            async with usage._engine.connect() as conn:
                return int(
                    (await conn.execute(select(func.count()).select_from(UsageRow))).scalar_one()
                )
        finally:
            await usage.close()

    return asyncio.run(read())


def _distinct(url: str) -> set[str]:
    async def read() -> set[str]:
        usage = SqlUsage(url)
        try:
            async with usage._engine.connect() as conn:
                return {r[0] for r in await conn.execute(select(UsageRow.request_id))}
        finally:
            await usage.close()

    return asyncio.run(read())

"""A gateway that has served before starts while PostgreSQL is down: it serves known keys from
its local snapshot, journals usage, says it is degraded (log and /readyz), and ships the usage
and leaves degraded mode once the database is back. One that never served still refuses."""

from __future__ import annotations

import contextlib
import signal
import uuid
from pathlib import Path

import httpx
import pytest

from support.chaos import (
    bootstrap_key,
    chaos_config,
    ledger_rows,
    proxied_postgres,
    redis_prefix,
    wait_until,
)
from support.processes import corral_up

pytestmark = [pytest.mark.chaos, pytest.mark.postgres, pytest.mark.redis]
CHAT = {"model": "fake-chat", "messages": [{"role": "user", "content": "hi"}]}


def test_a_gateway_that_served_before_starts_degraded_during_a_store_outage(
    tmp_path: Path,
) -> None:
    with (
        proxied_postgres() as (url, proxied, proxy),
        redis_prefix() as prefix,
        contextlib.ExitStack() as stack,
    ):
        with corral_up(
            chaos_config(tmp_path, "g0", database_url=proxied, redis_prefix=prefix)
        ) as g0:
            key = bootstrap_key(g0)
            headers = {"Authorization": f"Bearer {key}"}
            assert httpx.post(
                f"{g0.url}/v1/chat/completions", json=CHAT, headers=headers
            ).is_success
        assert list((tmp_path / "data" / "store-snapshot").iterdir())
        assert key not in "".join(
            p.read_text() for p in (tmp_path / "data" / "store-snapshot").iterdir()
        )  # key hashes only, never the key
        proxy.call(proxy.proxy.cut())
        config = chaos_config(tmp_path, "g1", database_url=proxied, redis_prefix=prefix)
        g1 = stack.enter_context(corral_up(config))
        ready = httpx.get(f"{g1.url}/readyz").json()
        assert "snapshot" in ready["degraded"]
        assert "DEGRADED" in g1.text()
        answers = [
            httpx.post(f"{g1.url}/v1/chat/completions", json=CHAT, headers=headers, timeout=10)
            for _ in range(5)
        ]
        assert all(a.status_code == 200 for a in answers)
        ids = {a.headers["x-request-id"] for a in answers}
        wrong = httpx.post(
            f"{g1.url}/v1/chat/completions", json=CHAT, headers={"Authorization": "Bearer ck-no"}
        )
        assert wrong.status_code == 401
        proxy.call(proxy.proxy.restore())
        assert wait_until(lambda: "degraded" not in httpx.get(f"{g1.url}/readyz").json(), 20)
        assert wait_until(lambda: ids <= {r.request_id for r in ledger_rows(url)}, 20)
        g1.process.send_signal(signal.SIGTERM)
        assert g1.process.wait(30) == 0


def test_a_gateway_that_never_served_refuses_to_start_without_its_store(tmp_path: Path) -> None:
    config = chaos_config(
        tmp_path,
        "g",
        database_url="postgresql+asyncpg://postgres@127.0.0.1:9/corral",
        redis_prefix=f"corral-chaos-{uuid.uuid4().hex[:8]}",
    )
    with pytest.raises(RuntimeError, match="unavailable"), corral_up(config, timeout=30):
        pass

"""PostgreSQL stalls silently (packets dropped, nothing refused) under streaming load, then the
gateway gets SIGTERM: it keeps serving from memory, says once that the store is down, its
metrics show the backlog, it exits within drain_timeout + a few seconds, and the next start
ships every record the stalled store never took."""

from __future__ import annotations

import asyncio
import contextlib
import re
import signal
import time
from pathlib import Path

import httpx
import pytest

from support.chaos import (
    Seen,
    bootstrap_key,
    chaos_config,
    counter_state,
    ledger_rows,
    micros,
    proxied_postgres,
    redis_prefix,
    staggered_load,
    wait_until,
)
from support.processes import CorralProcess, corral_up
from support.tcp_proxy import ProxyThread

pytestmark = [pytest.mark.chaos, pytest.mark.postgres, pytest.mark.redis]
DRAIN_TIMEOUT = 5.0
EXIT_MARGIN_S = 8.0
"""What shutdown may add to drain_timeout whatever the store does (store.timeout is 2 s)."""


def metric(text: str, name: str) -> float:
    match = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
    assert match, name
    return float(match.group(1))


async def stall_then_sigterm(gateway: CorralProcess, key: str, proxy: ProxyThread) -> Seen:
    until = asyncio.Event()
    load = asyncio.create_task(staggered_load(gateway.url, key, until))
    await asyncio.sleep(1.0)
    proxy.call(proxy.proxy.stall())
    await asyncio.sleep(7.0)  # past store.timeout (and a cancel): the ledger gave up on it
    async with httpx.AsyncClient() as http:
        metrics = (await http.get(f"{gateway.metrics_url}/metrics")).text
    assert metric(metrics, "corral_ledger_store_down") == 1, gateway.text()[-4000:]
    assert metric(metrics, "corral_ledger_pending_records") > 0  # not 0 while lag grows
    assert metric(metrics, "corral_ledger_lag_seconds") > 1
    gateway.process.send_signal(signal.SIGTERM)
    await asyncio.sleep(0.5)
    until.set()
    return await load


def test_sigterm_with_a_stalled_database_exits_in_time_and_loses_no_record(
    tmp_path: Path,
) -> None:
    with (
        proxied_postgres() as (url, proxied, proxy),
        redis_prefix() as prefix,
        contextlib.ExitStack() as stack,
    ):
        config = chaos_config(
            tmp_path, "g0", database_url=proxied, redis_prefix=prefix, drain_timeout=DRAIN_TIMEOUT
        )
        gateway = stack.enter_context(corral_up(config))
        seen = asyncio.run(stall_then_sigterm(gateway, bootstrap_key(gateway), proxy))
        signalled = time.monotonic()
        assert gateway.process.wait(DRAIN_TIMEOUT + EXIT_MARGIN_S + 5) == 0
        exit_s = time.monotonic() - signalled
        output = gateway.text()
        proxy.call(proxy.proxy.restore())
        heir = stack.enter_context(
            corral_up(chaos_config(tmp_path, "g1", database_url=url, redis_prefix=prefix))
        )
        assert wait_until(lambda: seen.ids() <= {r.request_id for r in ledger_rows(url)}, 30)
        rows = ledger_rows(url)
        (key_id,) = {row.key_id for row in rows if row.request_id in seen.ids()}
        assert wait_until(lambda: counter_state(prefix, key_id).reservations == 0, 10)
        state = counter_state(prefix, key_id)
        heir.process.send_signal(signal.SIGTERM)
        assert heir.process.wait(30) == 0
    print(
        f"\nchaos stalled store: exit after SIGTERM {exit_s:.1f} s (drain_timeout "
        f"{DRAIN_TIMEOUT:g}); answered {len(seen.answered)}, cut {len(seen.cut)}, "
        f"records {len(rows)}"
    )
    assert exit_s <= DRAIN_TIMEOUT + EXIT_MARGIN_S
    assert output.count("the store is unavailable") == 1  # one warning, not one per try
    assert "Traceback" not in output
    ids = [row.request_id for row in rows]
    assert len(ids) == len(set(ids))
    assert seen.answered <= set(ids)
    assert not {r.request_id for r in rows if r.outcome == "gateway_lost"} & seen.answered
    assert state.held_micros == 0
    assert state.spent_micros == micros([row for row in rows if row.key_id == key_id])

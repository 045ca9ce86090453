"""Redis stalls silently under load: the gateway admits on local counters meanwhile, and once
Redis answers again nothing stays held (reserves that landed late are released at once, not
after the 11-minute expiry) and the counters equal the ledger to the micro-dollar."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from pathlib import Path

import pytest

from support.chaos import (
    Seen,
    bootstrap_key,
    chaos_config,
    held_reservations,
    recovery_problem,
    redis_prefix,
    staggered_load,
    wait_until,
)
from support.databases import postgres_database
from support.processes import CorralProcess, corral_up
from support.services import redis_host_port
from support.tcp_proxy import ProxyThread

pytestmark = [pytest.mark.chaos, pytest.mark.postgres, pytest.mark.redis]


async def load_through_a_stall(gateway: CorralProcess, key: str, proxy: ProxyThread) -> Seen:
    until = asyncio.Event()
    load = asyncio.create_task(staggered_load(gateway.url, key, until))
    await asyncio.sleep(1.0)
    proxy.call(proxy.proxy.stall())
    await asyncio.sleep(2.0)
    proxy.call(proxy.proxy.restore())
    await asyncio.sleep(6.0)  # past the fail-open retry interval (5 s): Redis is used again
    until.set()
    return await load


def test_a_redis_stall_leaves_no_reservation_held(tmp_path: Path) -> None:
    with (
        postgres_database() as url,
        redis_prefix() as prefix,
        ProxyThread(*redis_host_port()) as proxy,
        contextlib.ExitStack() as stack,
    ):
        proxied = f"redis://127.0.0.1:{proxy.proxy.port}/0"
        config = chaos_config(tmp_path, "g", database_url=url, redis_prefix=prefix, redis=proxied)
        gateway = stack.enter_context(corral_up(config))
        seen = asyncio.run(load_through_a_stall(gateway, bootstrap_key(gateway), proxy))
        recovered = wait_until(lambda: recovery_problem(url, prefix, seen) is None, 15)
        problem = recovery_problem(url, prefix, seen)
        if problem is not None:
            problem += f"; held: {held_reservations(prefix)}\n{gateway.text()[-3000:]}"
        gateway.process.send_signal(signal.SIGTERM)
        assert gateway.process.wait(30) == 0
    released = gateway.text().count("reached Redis after this process had stopped waiting")
    print(
        f"\nchaos stalled redis: answered {len(seen.answered)}, cut {len(seen.cut)}, "
        f"late reservations released {released}"
    )
    assert recovered, problem
    assert seen.answered
    assert "Exception in ASGI application" not in gateway.text()

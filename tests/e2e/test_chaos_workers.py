"""kill -9 of one of two gateway workers under load: the gateway keeps serving, the parent
restarts the worker, and the new worker adopts the dead one's journal and reservations, so the
ledger and counters recover as after a whole-process crash."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
from pathlib import Path

import httpx
import pytest

from support.chaos import (
    RUNS,
    Seen,
    bootstrap_key,
    chaos_config,
    fake_engine_process,
    ledger_rows,
    recovery_problem,
    redis_prefix,
    staggered_load,
    wait_until,
    worker_pids,
)
from support.databases import postgres_database
from support.processes import CorralProcess, corral_up

pytestmark = [pytest.mark.chaos, pytest.mark.postgres, pytest.mark.redis]


async def load_and_kill_a_worker(
    gateway: CorralProcess, key: str, young: set[int]
) -> tuple[Seen, int]:
    """Load, then kill -9 a worker that has been running a while (``young``: ones just
    restarted; killing those again and again would be a crash loop, which stops the gateway)."""
    until = asyncio.Event()
    load = asyncio.create_task(staggered_load(gateway.url, key, until))
    await asyncio.sleep(random.uniform(1.5, 3.0))
    victim = random.choice(sorted(worker_pids(gateway.process.pid) - young))
    os.kill(victim, signal.SIGKILL)
    await asyncio.sleep(1.0)  # the other worker serves on
    until.set()
    return await load, victim


def test_a_killed_worker_is_restarted_and_its_requests_recovered(tmp_path: Path) -> None:
    seen = Seen()
    runs = max(1, RUNS // 2)
    with (
        postgres_database() as url,
        redis_prefix() as prefix,
        fake_engine_process() as engine,
        contextlib.ExitStack() as stack,
    ):
        config = chaos_config(
            tmp_path, "w", database_url=url, redis_prefix=prefix, workers=2, engine_url=engine
        )
        gateway = stack.enter_context(corral_up(config))
        key = bootstrap_key(gateway)
        parent = gateway.process.pid
        young: set[int] = set()
        for run in range(runs):
            before = worker_pids(parent)
            got, victim = asyncio.run(load_and_kill_a_worker(gateway, key, young))
            seen.answered |= got.answered
            seen.cut |= got.cut
            restarted = wait_until(lambda b=before: len(worker_pids(parent) - b) == 1, 20)
            assert restarted, f"run {run}: worker {victim} not replaced:\n{gateway.text()[-2000:]}"
            young = worker_pids(parent) - before
            recovered = wait_until(lambda: recovery_problem(url, prefix, seen) is None, 30)
            assert recovered, f"run {run}: {recovery_problem(url, prefix, seen)}"
            assert httpx.get(f"{gateway.url}/readyz", timeout=5).status_code == 200
        rows = ledger_rows(url)
        gateway.process.send_signal(signal.SIGTERM)
        assert gateway.process.wait(30) == 0
    lost = {row.request_id for row in rows if row.outcome == "gateway_lost"}
    print(
        f"\nchaos worker kill: runs {runs}, answered {len(seen.answered)}, cut {len(seen.cut)}, "
        f"records {len(rows)}, estimated {len(lost)}"
    )
    assert seen.answered
    assert not lost & seen.answered
    assert "restarting it in" in gateway.text()

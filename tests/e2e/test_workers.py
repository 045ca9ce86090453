"""`server.workers: 2`: two gateway processes on one port, one Redis, one ledger."""

from __future__ import annotations

import re
import signal
import sqlite3
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from support.processes import CORRAL, corral_up, fake_engine, free_port
from support.services import redis_url

pytestmark = pytest.mark.redis
CHAT = {"model": "fake-chat", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}


@pytest.fixture
def engine_url() -> Iterator[str]:
    with fake_engine() as url:
        yield url


@pytest.fixture
def prefix() -> Iterator[str]:
    name = f"corral-test-{uuid.uuid4().hex[:8]}:"
    yield name
    client = redis.Redis.from_url(redis_url())
    for key in client.scan_iter(f"{name}*"):
        client.delete(key)
    client.close()


def _config(tmp_path: Path, engine_url: str, prefix: str) -> Path:
    path = tmp_path / "corral.yaml"
    path.write_text(
        f"""data_dir: {tmp_path / "data"}
server: {{port: {free_port()}, workers: 2, drain_grace: 0}}
logging: {{access_log: false}}
limits:
  redis_url: {redis_url()}
  redis_prefix: "{prefix}"
  key_defaults: {{rpm: 10}}
models:
  - name: fake-chat
    engine: {{kind: openai, endpoints: [{{url: "{engine_url}"}}]}}
"""
    )
    return path


def _requests_served(metrics: str) -> float:
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("corral_requests_total{")
    )


def test_two_workers_share_the_port_the_limits_and_the_ledger(
    tmp_path: Path, engine_url: str, prefix: str
) -> None:
    metrics_port = free_port()
    config = _config(tmp_path, engine_url, prefix)
    with corral_up(config, env={"CORRAL_SERVER__METRICS_PORT": str(metrics_port)}) as corral:
        end = time.monotonic() + 30
        while not (match := re.search(r"(ck-[A-Za-z0-9_\-]{20,})", corral.text())):
            assert time.monotonic() < end, corral.text()
            time.sleep(0.1)
        headers = {"Authorization": f"Bearer {match.group(1)}"}
        statuses = []
        for _ in range(20):  # a new connection each time: the kernel spreads them over workers
            with httpx.Client(base_url=corral.url, timeout=10) as client:
                response = client.post("/v1/chat/completions", json=CHAT, headers=headers)
                statuses.append(response.status_code)
        # One key limit of 10 per minute for both workers together, not 10 each.
        assert statuses.count(200) == 10
        assert statuses.count(429) == 10
        served = set()
        metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"  # shared like the API port
        for _ in range(40):  # each worker exports its own counters: both have served some
            with httpx.Client(timeout=10) as client:
                served.add(_requests_served(client.get(metrics_url).text))
        # Two workers' counts add up to 20 (a split of 10 and 10 shows as one value), and no
        # worker has them all.
        assert all(20 - count in served for count in served), served
        assert max(served) < 20, served
        corral.process.send_signal(signal.SIGTERM)
        assert corral.process.wait(30) == 0
    ledger = sqlite3.connect(tmp_path / "data" / "corral.db")
    try:
        statuses_recorded = [s for (s,) in ledger.execute("select status from usage_records")]
    finally:
        ledger.close()
    # One record per request, refusals included, written by whichever worker took it.
    assert sorted(statuses_recorded) == sorted(statuses)
    # Both workers journal into one directory (a survivor adopts a dead worker's journal); a
    # clean stop leaves nothing unshipped in it.
    assert list((tmp_path / "data" / "spool").rglob("*.wal")) == []


def test_workers_without_shared_counters_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "corral.yaml"
    path.write_text(
        f"""data_dir: {tmp_path / "data"}
server: {{port: {free_port()}, workers: 2}}
models:
  - name: fake-chat
    engine: {{kind: openai, endpoints: [{{url: "http://127.0.0.1:9/v1"}}]}}
"""
    )
    result = subprocess.run(
        [CORRAL, "up", "--config", str(path)],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    message = " ".join((result.stdout + result.stderr).split())
    assert "server.workers > 1 needs limits.redis_url" in message
    assert "Traceback" not in result.stderr

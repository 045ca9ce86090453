"""A key revoked through the API is refused by a separately started process within 5 s."""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

from integration.admin.harness import SECRET, AdminServer

WATCHER = Path(__file__).with_name("key_watcher.py")


def _lines(
    process: subprocess.Popen[str],
) -> tuple[queue.Queue[tuple[float, str]], threading.Thread]:
    """What the process prints, line by line with the time each arrived; read until it ends."""
    lines: queue.Queue[tuple[float, str]] = queue.Queue()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.put((time.monotonic(), line.strip()))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    return lines, reader


def test_revocation_reaches_another_process_within_five_seconds(
    admin_server: AdminServer, admin_http: httpx.Client, tmp_path: Path
) -> None:
    created = admin_http.post("/keys", json={"name": "watched"}).json()
    env = {**os.environ, "CORRAL_SECRET_KEY": SECRET}
    with subprocess.Popen(
        [sys.executable, str(WATCHER), admin_server.db_url, str(tmp_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    ) as watcher:
        lines, reader = _lines(watcher)
        try:
            assert watcher.stdin is not None
            watcher.stdin.write(created["key"] + "\n")
            watcher.stdin.close()
            assert lines.get(timeout=30)[1] == "ok"
            revoked_at = time.monotonic()
            assert admin_http.post(f"/keys/{created['id']}/revoke").status_code == 200
            refused_at, answer = lines.get(timeout=10)
            assert answer == "refused"
            assert refused_at - revoked_at < 5.0
        finally:
            watcher.terminate()
            watcher.wait(timeout=10)
            reader.join(timeout=10)

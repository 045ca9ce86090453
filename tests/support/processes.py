"""Corral processes for end-to-end tests: `corral up` in a subprocess, with its key and logs."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

CORRAL = str(Path(sys.executable).with_name("corral"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class CorralProcess:
    """A running `corral up`: its URL, the bootstrap key if it printed one, and its output."""

    process: subprocess.Popen[str]
    url: str
    key: str | None
    output: list[str] = field(default_factory=list)

    def text(self) -> str:
        return "".join(self.output)


@contextmanager
def corral_up(
    config: Path, env: dict[str, str] | None = None, timeout: float = 60
) -> Iterator[CorralProcess]:
    """Start `corral up --config CONFIG` (its port comes from the config) and stop it after."""
    port = _port_of(config)
    process = subprocess.Popen(
        [CORRAL, "up", "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, **(env or {})},
    )
    running = CorralProcess(process, f"http://127.0.0.1:{port}", None)
    reader = threading.Thread(target=_read, args=(running,), daemon=True)
    reader.start()
    try:
        _wait_ready(running, timeout)
        match = re.search(r"(ck-[A-Za-z0-9_\-]{20,})", running.text())
        running.key = match.group(1) if match else None
        yield running
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        reader.join(5)
        if process.stdout is not None:
            process.stdout.close()


def _read(running: CorralProcess) -> None:
    assert running.process.stdout is not None
    for line in running.process.stdout:
        running.output.append(line)


def _wait_ready(running: CorralProcess, timeout: float) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if running.process.poll() is not None:
            raise RuntimeError(f"corral up exited early:\n{running.text()[-3000:]}")
        try:
            # Ready, and welcomed: the first admin key (if any) is printed with the welcome.
            ready = httpx.get(f"{running.url}/readyz", timeout=1).status_code == 200
            if ready and "Corral is up" in running.text():
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"corral up was not ready within {timeout} s:\n{running.text()[-3000:]}")


def _port_of(config: Path) -> int:
    match = re.search(r"port:\s*(\d+)", config.read_text())
    if not match:
        raise ValueError(f"{config} names no server port")
    return int(match.group(1))


@contextmanager
def fake_engine() -> Iterator[str]:
    """A FakeEngine in its own process, as an external engine gateway workers share: its URL."""
    port = free_port()
    process = subprocess.Popen(
        [CORRAL, "fake-engine", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        end = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/health", timeout=1)
                break
            except httpx.HTTPError:
                if time.monotonic() > end:
                    raise TimeoutError("the FakeEngine did not start") from None
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        process.terminate()
        process.wait(10)

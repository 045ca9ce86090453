"""Starts a local engine as a child process on a loopback port and stops it again."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import sys
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import aiohttp

from corral.catalog import LocalEngineConfig
from corral.engines.local.process import PROGRESS, READY
from corral.errors import ModelLoadError

Progress = Callable[[str], None]

# Preparing a model the first time may download and convert it; loading it later takes seconds.
READY_TIMEOUT = 1800.0
STOP_TIMEOUT = 10.0


@dataclass
class RunningEngine:
    """A started local engine: where it listens, and how to stop it."""

    name: str
    base_url: str
    process: asyncio.subprocess.Process
    log_path: Path
    _drain: asyncio.Task[None] | None = field(default=None, repr=False)

    @property
    def pid(self) -> int:
        return self.process.pid

    async def stop(self) -> None:
        """Ask the engine to stop (SIGTERM), and kill it if it has not within STOP_TIMEOUT."""
        if self.process.returncode is None:
            self.process.terminate()
            try:
                await asyncio.wait_for(self.process.wait(), STOP_TIMEOUT)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
        if self._drain is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._drain


async def launch_local_engine(
    name: str,
    config: LocalEngineConfig,
    data_dir: Path,
    progress: Progress,
    *,
    ready_timeout: float = READY_TIMEOUT,
) -> RunningEngine:
    """Start ``python -m corral.engines.local serve`` for ``config`` and wait until it answers.

    The child prepares the model on first use (progress lines go to ``progress``), then listens
    on a free loopback port. ModelLoadError, with the child's last log lines, if it never gets
    there. The child exits by itself if this process dies (it watches its stdin).
    """
    data_dir, log_path = _paths(name, data_dir)
    command = [sys.executable, "-m", "corral.engines.local", "serve", "--name", name]
    command += ["--config", config.model_dump_json(), "--data-dir", str(data_dir)]
    process = await asyncio.create_subprocess_exec(
        *command,
        "--exit-with-parent",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        limit=4 * 1024 * 1024,  # progress bars redraw with \r, making very long "lines"
    )
    log = log_path.open("a", encoding="utf-8")
    tail: deque[str] = deque(maxlen=30)
    try:
        url = await asyncio.wait_for(_until_ready(process, log, tail, progress), ready_timeout)
        if url is None:
            code = await process.wait()
            raise ModelLoadError(_died(name, f"exited with code {code}", tail, log_path))
        await _check_health(url)
    except BaseException as exc:
        if process.returncode is None:
            process.kill()
            await process.wait()
        log.close()
        if isinstance(exc, TimeoutError):
            reason = f"was not ready after {ready_timeout:.0f} s"
            raise ModelLoadError(_died(name, reason, tail, log_path)) from exc
        raise
    drain = asyncio.create_task(_drain(process, log))
    progress(f"local engine for {name} ready at {url} (log: {log_path})")
    return RunningEngine(name, url, process, log_path, drain)


async def _until_ready(
    process: asyncio.subprocess.Process, log: IO[str], tail: deque[str], progress: Progress
) -> str | None:
    """The base URL the child announces, or None if its output ends first."""
    assert process.stdout is not None
    async for raw in process.stdout:
        line = raw.decode(errors="replace").rstrip()
        log.write(line + "\n")
        log.flush()
        if line.startswith(READY):
            return line[len(READY) :].strip()
        if line.startswith(PROGRESS):
            progress(line[len(PROGRESS) :])
        elif line:
            tail.append(line[-500:])
    return None


async def _drain(process: asyncio.subprocess.Process, log: IO[str]) -> None:
    """Copy the running child's output to its log, so its pipe never fills up."""
    assert process.stdout is not None
    try:
        async for raw in process.stdout:
            log.write(raw.decode(errors="replace"))
            log.flush()
    finally:
        log.close()


async def _check_health(base_url: str) -> None:
    health = base_url.removesuffix("/v1") + "/health"
    timeout = aiohttp.ClientTimeout(total=10)
    try:
        async with aiohttp.ClientSession(timeout=timeout) as session, session.get(health) as reply:
            if reply.status == 200:
                return
            problem = f"answered {reply.status}"
    except (aiohttp.ClientError, TimeoutError) as exc:
        problem = f"could not be reached ({exc})"
    raise ModelLoadError(f"the local engine at {health} {problem} right after starting")


def _paths(name: str, data_dir: Path) -> tuple[Path, Path]:
    """The absolute data directory, and the engine's log file (its folder created)."""
    data_dir = data_dir.resolve()
    log_path = data_dir / "logs" / f"engine-{re.sub(r'[^A-Za-z0-9._-]+', '-', name)}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    return data_dir, log_path


def _died(name: str, reason: str, tail: deque[str], log_path: Path) -> str:
    lines = "\n".join(f"  | {line}" for line in tail) or "  | (no output)"
    return (
        f"The local engine for {name} {reason} before it was ready. "
        f"Its last lines (full log: {log_path}):\n{lines}"
    )

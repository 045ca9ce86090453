"""The engine process: prepares its model if needed, loads it, serves HTTP on loopback.

It talks to whoever started it through its standard output: lines starting with PROGRESS are
progress messages, the line starting with READY carries the base URL, everything else is log.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import uvloop

from corral.catalog import LocalEngineConfig
from corral.engines.local.manifest import PreparedModel
from corral.errors import CorralError, ModelLoadError

PROGRESS = "corral-engine progress: "
READY = "corral-engine ready: "

Report = Callable[[str], None]


def report_line(message: str) -> None:
    print(PROGRESS + message, flush=True)


def find_or_prepare(config: LocalEngineConfig, data_dir: Path, report: Report) -> PreparedModel:
    """The prepared model, preparing it in a child process first when it is not cached yet."""
    from corral.engines.local import preparation
    from corral.engines.local.sources import locate

    source = locate(config.model, config.task, hub_cache=data_dir / "models" / "hub", report=report)
    done = preparation.lookup(source, config.backend, data_dir)
    if done is not None:
        return done
    report(f"preparing {source.label} once; later starts reuse it")
    # A separate process, so the conversion's PyTorch and transformers never stay resident here.
    command = [sys.executable, "-m", "corral.engines.local", "prepare"]
    command += ["--config", config.model_dump_json(), "--data-dir", str(data_dir)]
    # Its output is ours: progress lines reach the launcher unchanged.
    if subprocess.run(command, check=False).returncode != 0:  # noqa: S603 - fixed argv, no shell
        raise ModelLoadError(f"preparing {source.label} failed; see the messages above")
    prepared = preparation.lookup(source, config.backend, data_dir)
    if prepared is None:
        raise ModelLoadError(f"preparing {source.label} left nothing usable in {data_dir}")
    return prepared


async def serve(
    name: str,
    config: LocalEngineConfig,
    data_dir: Path,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    exit_with_parent: bool = False,
    report: Report = report_line,
) -> None:
    """Serve until SIGTERM or SIGINT (or, with ``exit_with_parent``, until stdin closes)."""
    from aiohttp import web

    from corral.engines.local import runtime

    prepared = await asyncio.to_thread(find_or_prepare, config, data_dir, report)
    report(f"loading {prepared.label} ({prepared.backend})")
    engine = await asyncio.to_thread(runtime.load, name, config, prepared)
    engine.start()
    runner = web.AppRunner(
        engine.server.build_app(), access_log=None, handle_signals=False, handler_cancellation=True
    )
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = runner.addresses[0][1]
    print(f"{READY}http://{host}:{bound}/v1", flush=True)
    try:
        await _until_stopped(exit_with_parent)
    finally:
        await runner.cleanup()
        engine.stop()


async def _until_stopped(exit_with_parent: bool) -> None:
    loop = asyncio.get_running_loop()
    stopped = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopped.set)
    if exit_with_parent:
        # The launcher holds our stdin open; when it dies, reading stdin hits end of file.
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        watcher = asyncio.create_task(_set_on_eof(reader, stopped))
    await stopped.wait()
    if exit_with_parent:
        watcher.cancel()


async def _set_on_eof(reader: asyncio.StreamReader, event: asyncio.Event) -> None:
    await reader.read()
    event.set()


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m corral.engines.local")
    parser.add_argument("command", choices=["serve", "prepare"])
    parser.add_argument("--config", required=True, help="LocalEngineConfig as JSON")
    parser.add_argument("--data-dir", required=True, type=Path)
    parser.add_argument("--name", default="local")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--exit-with-parent", action="store_true")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m corral.engines.local``."""
    args = _arguments(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    config = LocalEngineConfig.model_validate_json(args.config)
    try:
        if args.command == "prepare":
            from corral.engines.local.preparation import prepare

            prepare(config.model, config.task, config.backend, args.data_dir, report_line)
            return 0
        uvloop.run(
            serve(
                args.name,
                config,
                args.data_dir,
                host=args.host,
                port=args.port,
                exit_with_parent=args.exit_with_parent,
            )
        )
    except CorralError as exc:
        print(f"error: {exc.message}", file=sys.stderr, flush=True)
        return 1
    return 0

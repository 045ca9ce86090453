"""Starts the engines Corral runs itself (fake, local) and turns the catalog into live routes."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from contextlib import AsyncExitStack
from pathlib import Path

from corral.catalog import FakeEngineConfig, LocalEngineConfig, ModelSpec, OpenAIEngine
from corral.engines.fake import FakeEngine, FakeScript
from corral.errors import ConfigError
from corral.gateway.routes import LiveEndpoint, ModelRoute, RouteTable

Progress = Callable[[str], None]


def upstream_auth_header(engine: OpenAIEngine) -> str | None:
    """``Bearer <key>`` from the engine's key source; ConfigError when the source is empty."""
    if engine.api_key_env:
        key = os.environ.get(engine.api_key_env)
        if not key:
            raise ConfigError(
                f"engine.api_key_env: the environment variable {engine.api_key_env} is not set"
            )
        return f"Bearer {key.strip()}"
    if engine.api_key_file:
        try:
            key = Path(engine.api_key_file).expanduser().read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(
                f"engine.api_key_file: cannot read {engine.api_key_file} ({exc.strerror})"
            ) from exc
        if not key:
            raise ConfigError(f"engine.api_key_file: {engine.api_key_file} is empty")
        return f"Bearer {key}"
    return None


async def start_engines(
    models: list[ModelSpec], data_dir: Path, stack: AsyncExitStack, progress: Progress
) -> RouteTable:
    """Start every engine Corral manages itself, all at once; stopping ``stack`` stops them."""

    async def route_for(spec: ModelSpec) -> ModelRoute:
        engine = spec.engine
        if isinstance(engine, OpenAIEngine):
            endpoints = [LiveEndpoint(e.url, e.weight) for e in engine.endpoints]
            return ModelRoute(spec, endpoints, upstream_auth_header(engine))
        if isinstance(engine, FakeEngineConfig):
            url = await _start_fake(spec.name, engine, stack)
            progress(f"FakeEngine for {spec.name} listening at {url}")
        else:
            url = await _start_local(spec.name, engine, data_dir, stack, progress)
        return ModelRoute(spec, [LiveEndpoint(url)])

    # Each engine registers its own stop on the stack as soon as it runs, so a failure of one
    # still stops the others.
    return RouteTable(list(await asyncio.gather(*(route_for(spec) for spec in models))))


async def _start_fake(name: str, config: FakeEngineConfig, stack: AsyncExitStack) -> str:
    script = FakeScript(
        tokens=config.tokens,
        time_to_first_token=config.time_to_first_token,
        token_delay=config.token_delay,
        embedding_dimensions=config.embedding_dimensions,
    )
    engine = FakeEngine(script, model=name)
    await engine.start()
    stack.push_async_callback(engine.stop)
    return engine.base_url


async def _start_local(
    name: str,
    config: LocalEngineConfig,
    data_dir: Path,
    stack: AsyncExitStack,
    progress: Progress,
) -> str:
    try:
        from corral.engines.local.launcher import launch_local_engine
    except ImportError as exc:
        raise ConfigError(
            f"models: {name} uses the local engine, which needs the 'local' extra: "
            "run `make up` or `pip install 'corral[local]'`"
        ) from exc
    running = await launch_local_engine(name, config, data_dir, progress)
    stack.push_async_callback(running.stop)
    return running.base_url

"""The Ray Serve CPU application: each replica hosts Corral's local (or fake) engine in-process."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from aiohttp import web
from ray import serve
from ray.serve import Application
from ray.serve.deployment import Deployment
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from corral.engines.ray.autoscaling import TOKENS_IN_FLIGHT, tokens_requested

log = logging.getLogger("corral.engines.ray")

_PASSED_HEADERS = ("content-type", "retry-after", "cache-control")


def _hosted_app(
    served_name: str, engine: str, config: dict[str, Any], data_dir: Path
) -> tuple[web.Application, Callable[[], None]]:
    """The engine's aiohttp app, and how to stop its workers (loads the model, blocking)."""
    if engine == "fake":
        from corral.engines.fake import FakeEngine, FakeScript

        return FakeEngine(FakeScript(**config), model=served_name).build_app(), lambda: None
    from corral.catalog import LocalEngineConfig
    from corral.engines.local import runtime
    from corral.engines.local.process import find_or_prepare

    local = LocalEngineConfig.model_validate(config)
    prepared = find_or_prepare(local, data_dir, log.info)
    loaded = runtime.load(served_name, local, prepared)
    loaded.start()
    return loaded.server.build_app(), loaded.stop


class CorralReplica:
    """One replica: the engine on a loopback port, relayed through Serve's HTTP proxy.

    Each replica reports its tokens in flight (prompt plus requested output of open requests)
    for the LLM-aware autoscaling policy.
    """

    def __init__(
        self, served_name: str, engine: str, engine_config: dict[str, Any], data_dir: str
    ) -> None:
        self._app, self._stop_engine = _hosted_app(
            served_name, engine, engine_config, Path(data_dir)
        )
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self._base = ""
        self._starting = asyncio.Lock()
        self._tokens_in_flight = 0

    async def _upstream(self) -> tuple[aiohttp.ClientSession, str]:
        async with self._starting:
            if self._session is None:
                runner = web.AppRunner(self._app, access_log=None, handle_signals=False)
                await runner.setup()
                site = web.TCPSite(runner, "127.0.0.1", 0)
                await site.start()
                self._runner = runner
                self._base = f"http://127.0.0.1:{runner.addresses[0][1]}"
                self._session = aiohttp.ClientSession(
                    timeout=aiohttp.ClientTimeout(total=None, sock_connect=10)
                )
        return self._session, self._base

    async def __call__(self, request: Request) -> Response:
        path = request.url.path.removeprefix(request.scope.get("root_path", "")) or "/"
        body = await request.body()
        weight = _weight(body) if request.method == "POST" else 0
        session, base = await self._upstream()
        self._tokens_in_flight += weight
        try:
            upstream = await session.request(
                request.method,
                base + path,
                data=body,
                headers={"content-type": request.headers.get("content-type", "application/json")},
            )
        except BaseException:
            self._tokens_in_flight -= weight
            raise
        headers = {k: v for k, v in upstream.headers.items() if k.lower() in _PASSED_HEADERS}
        if upstream.content_type == "text/event-stream":
            return StreamingResponse(
                self._relay(upstream, weight), status_code=upstream.status, headers=headers
            )
        try:
            content = await upstream.read()
        finally:
            upstream.release()
            self._tokens_in_flight -= weight
        return Response(content, status_code=upstream.status, headers=headers)

    async def _relay(self, upstream: aiohttp.ClientResponse, weight: int) -> AsyncIterator[bytes]:
        try:
            async for chunk in upstream.content.iter_any():
                yield chunk
        finally:
            upstream.release()
            self._tokens_in_flight -= weight

    def record_autoscaling_stats(self) -> dict[str, float]:
        """Ray Serve's custom autoscaling metrics hook (read by the LLM-aware policy)."""
        return {TOKENS_IN_FLIGHT: float(self._tokens_in_flight)}

    async def __del__(self) -> None:
        # Ray Serve calls this after the replica drained (graceful_shutdown_timeout_s).
        if self._session is not None:
            await self._session.close()
        if self._runner is not None:
            await self._runner.cleanup()
        await asyncio.to_thread(self._stop_engine)


def _weight(body: bytes) -> int:
    try:
        parsed = orjson.loads(body) if body else {}
    except orjson.JSONDecodeError:
        return 0
    return tokens_requested(parsed) if isinstance(parsed, dict) else 0


def build_app(args: dict[str, Any]) -> Application:
    """The application Ray builds from a Serve config (``import_path`` names this)."""
    replica: Deployment = serve.deployment(name="corral-replica", **args["deployment"])(
        CorralReplica
    )
    app: Application = replica.bind(
        args["served_name"], args["engine"], args["engine_config"], args["data_dir"]
    )
    return app

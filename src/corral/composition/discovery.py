"""Keeps the route table in step with the model sources: learns, updates and forgets models."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from contextlib import AsyncExitStack

import aiohttp
from pydantic import ValidationError

from corral.catalog import Endpoint, EndpointHealth, ModelSpec, OpenAIEngine
from corral.clock import Clock
from corral.discovery import DiscoveredModel, ModelSource
from corral.gateway.cold_start import ColdStart, ColdStartGate
from corral.gateway.routes import LearnedRoute, ModelRoute, RouteTable, TableChanges
from corral.kube.connect import lightkube_client
from corral.settings import DiscoverySettings

log = logging.getLogger("corral.discovery")

COLD_POLL_S = 1.0
"""How often a held request's wait re-reads the sources and knocks on the endpoint."""
_KNOCK_TIMEOUT = aiohttp.ClientTimeout(total=30.0)


def learned_route(
    model: DiscoveredModel, cold_start: ColdStart | None, *, held: bool = False
) -> LearnedRoute:
    """The route for ``model``; ``held``: requests wait for a replica (it was seen at zero).

    Raises ValidationError when the source reported a name or URL Corral does not accept.
    """
    spec = ModelSpec(
        name=model.name,
        engine=OpenAIEngine(
            endpoints=[Endpoint(url=url) for url in model.base_urls],
            upstream_model=model.upstream_model,
        ),
        health=EndpointHealth() if model.active_probes else EndpointHealth(probe_interval=0),
        scale_to_zero=model.min_replicas == 0,
    )
    gate = cold_start if (held or model.scales_to_zero) else None
    return LearnedRoute(spec, cold_start=gate, ready_replicas=model.ready_replicas)


class ModelDiscovery:
    """Reads every source each ``interval`` and reconciles the learned routes with them.

    A source that fails keeps the models it reported last: an unreachable Ray cluster or API
    server must not take working routes away. Reads are shared: a held request asking for a
    refresh while one runs waits for that one.
    """

    def __init__(
        self,
        sources: Sequence[ModelSource],
        routes: RouteTable,
        clock: Clock,
        *,
        interval: float,
        on_change: Callable[[], None] = lambda: None,
    ) -> None:
        self._sources = list(sources)
        self._routes = routes
        self._clock = clock
        self._interval = interval
        self._on_change = on_change
        self._last: dict[str, list[DiscoveredModel]] = {}
        self._held: set[str] = set()  # seen with no replica: requests are held from then on
        self._reading: asyncio.Task[TableChanges] | None = None
        self._loop_task: asyncio.Task[None] | None = None
        self.cold_start: ColdStart | None = None

    async def refresh(self) -> TableChanges:
        """Read the sources now (or join the read in progress) and reconcile."""
        if self._reading is None or self._reading.done():
            self._reading = asyncio.get_running_loop().create_task(self._read_and_reconcile())
        return await asyncio.shield(self._reading)

    async def _read_and_reconcile(self) -> TableChanges:
        results = await asyncio.gather(*(s.models() for s in self._sources), return_exceptions=True)
        for source, result in zip(self._sources, results, strict=True):
            if isinstance(result, Exception):
                log.warning(
                    "model source %s failed; keeping its last models: %s", source.name, result
                )
            elif isinstance(result, BaseException):
                raise result
            else:
                self._last[source.name] = result
        changes = self._routes.reconcile(self._learned(), self._clock)
        if changes:
            log.info(
                "routes learned",
                extra={
                    "added": changes.added,
                    "updated": changes.updated,
                    "removed": changes.removed,
                },
            )
        self._on_change()
        return changes

    def _learned(self) -> list[LearnedRoute]:
        learned, seen = [], set()
        for source in self._sources:
            for model in self._last.get(source.name, []):
                if model.name in seen:
                    log.warning("model %s reported twice; the first source wins", model.name)
                    continue
                seen.add(model.name)
                if model.scales_to_zero:
                    self._held.add(model.name)
                try:
                    learned.append(
                        learned_route(model, self.cold_start, held=model.name in self._held)
                    )
                except ValidationError as exc:
                    log.warning("model source %s reported an unusable model: %s", source.name, exc)
        self._held &= seen
        return learned

    def start(self) -> None:
        """Refresh every ``interval`` seconds until ``stop``."""
        self._loop_task = asyncio.get_running_loop().create_task(self._every_interval())

    async def _every_interval(self) -> None:
        while True:
            await self._clock.sleep(self._interval)
            try:
                await self.refresh()
            except Exception:
                # Discovery must outlive one bad round; the routes learned so far keep serving.
                log.exception("model discovery failed")

    async def stop(self) -> None:
        for task in (self._loop_task, self._reading):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task


class RouteReadiness:
    """ReadinessProbe for held models: is a replica serving, and wake the model meanwhile.

    A learned model is ready when its source reports a serving replica (the sources are read
    again while requests wait). A configured one is ready when its engine answers
    ``GET /models``. Either way the gateway knocks on the endpoint: a proxy that holds requests
    while its autoscaler starts a replica (Ray Serve's) takes the knock as the wake-up.
    """

    def __init__(
        self,
        routes: RouteTable,
        session: aiohttp.ClientSession,
        clock: Clock,
        discovery: ModelDiscovery | None = None,
        *,
        poll_s: float = COLD_POLL_S,
    ) -> None:
        self._routes = routes
        self._session = session
        self._clock = clock
        self._discovery = discovery
        self._poll_s = poll_s

    async def ready(self, model: str, timeout_s: float) -> bool:
        end = self._clock.monotonic() + timeout_s
        route = self._routes.get(model)
        if route is None:
            return False
        knock = asyncio.get_running_loop().create_task(self._knock(route))
        try:
            while True:
                route = self._routes.get(model)
                if route is None:
                    return False
                if route.ready_replicas is not None:
                    if route.ready_replicas > 0:
                        return True
                elif knock.done() and knock.result():
                    return True
                if knock.done():
                    knock = asyncio.get_running_loop().create_task(self._knock(route))
                left = end - self._clock.monotonic()
                if left <= 0:
                    return False
                await self._clock.sleep(min(self._poll_s, left))
                if self._discovery is not None and route.ready_replicas is not None:
                    await self._discovery.refresh()
        finally:
            knock.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await knock

    async def _knock(self, route: ModelRoute) -> bool:
        """``GET {endpoint}/models`` on the first endpoint: True when it answered 200."""
        headers = {"Authorization": route.auth_header} if route.auth_header else {}
        url = f"{route.endpoints[0].base_url}/models"
        try:
            async with self._session.get(url, headers=headers, timeout=_KNOCK_TIMEOUT) as reply:
                return reply.status == 200
        except (aiohttp.ClientError, OSError, TimeoutError):
            return False


async def configured_sources(
    settings: DiscoverySettings, stack: AsyncExitStack
) -> list[ModelSource]:
    """The sources ``settings`` turn on; ConfigError naming the extra to install when missing."""
    sources: list[ModelSource] = []
    if settings.ray is not None:
        from corral.engines.ray.discovery import RayServeSource

        ray = settings.ray
        sources.append(await asyncio.to_thread(RayServeSource.attached, ray.address, ray.serve_url))
    if settings.kubernetes is not None:
        kube = lightkube_client(
            settings.kubernetes.context, purpose="discovery.kubernetes", in_cluster=True
        )
        stack.push_async_callback(kube.close)
        from corral.control.discovery import KubeServiceSource

        sources.append(KubeServiceSource(kube, settings.kubernetes.namespaces))
    return sources


async def start_discovery(
    settings: DiscoverySettings,
    routes: RouteTable,
    clock: Clock,
    session: aiohttp.ClientSession,
    stack: AsyncExitStack,
    *,
    sources: Sequence[ModelSource] = (),
    on_change: Callable[[], None] = lambda: None,
) -> ModelDiscovery:
    """Hold requests for models that scale to zero, learn models, and keep learning them."""
    every = [*await configured_sources(settings, stack), *sources]
    discovery = ModelDiscovery(
        every, routes, clock, interval=settings.interval, on_change=on_change
    )
    readiness = RouteReadiness(routes, session, clock, discovery)
    gate = ColdStartGate(readiness, clock, settings.cold_start)
    stack.push_async_callback(gate.close)
    discovery.cold_start = gate
    for route in routes:
        if route.spec.scale_to_zero:
            route.cold_start = gate
    if every:
        await discovery.refresh()
        discovery.start()
        stack.push_async_callback(discovery.stop)
    return discovery

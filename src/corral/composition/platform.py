"""Builds one Corral process from settings: engines, relay, metering, gateway and web routes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry
from starlette.types import ASGIApp

from corral.clock import Clock, SystemClock
from corral.composition.discovery import ModelDiscovery, start_discovery
from corral.composition.engine_metrics import EngineMetrics, local_engine_metric_urls
from corral.composition.engines import start_engines
from corral.composition.web import build_metrics_app, build_web_app
from corral.discovery import ModelSource
from corral.gateway.app import Gateway, GatewayParts
from corral.gateway.endpoints import EndpointCollector, EndpointProbes
from corral.gateway.journal import FsyncPolicy
from corral.gateway.ledger import Ledger, LedgerMetrics, OwnerGone, UsageSink
from corral.gateway.metering import Meter, MeterChain
from corral.gateway.metrics import GatewayMetrics
from corral.gateway.quotas import Quotas
from corral.gateway.relay import Relay
from corral.gateway.routes import RouteTable
from corral.gateway.tracing import RequestTracer, tracer_from_environment
from corral.principals import KeyDirectory
from corral.settings import CorralSettings


def _quiet(message: str) -> None:
    del message


@dataclass
class Platform:
    """A started Corral process: its ASGI app and the parts tests and operators look at."""

    settings: CorralSettings
    app: ASGIApp
    gateway: Gateway
    routes: RouteTable
    keys: KeyDirectory
    registry: CollectorRegistry
    ready: bool = field(default=False)
    discovery: ModelDiscovery | None = None
    metrics_app: ASGIApp | None = None
    """/metrics, for its own listener: never on the public port."""


@asynccontextmanager
async def running_platform(
    settings: CorralSettings,
    *,
    keys: KeyDirectory,
    clock: Clock | None = None,
    meters: tuple[Meter, ...] = (),
    usage_sink: UsageSink | None = None,
    quotas: Quotas | None = None,
    registry: CollectorRegistry | None = None,
    on_key_use: Callable[[str], None] | None = None,
    tracer: RequestTracer | None = None,
    mounts: dict[str, ASGIApp] | None = None,
    progress: Callable[[str], None] = _quiet,
    spool: str = "spool",
    model_sources: Sequence[ModelSource] = (),
    owner: str | None = None,
    owner_gone: OwnerGone | None = None,
    degraded: Callable[[], str | None] = lambda: None,
) -> AsyncIterator[Platform]:
    """Start engines and the relay, yield the platform, and stop everything on exit.
    ``owner``: this process's name on its usage journal and reservations; ``owner_gone``:
    settles what a dead process still held once its journal is shipped."""
    clock = clock or SystemClock()
    registry = registry or CollectorRegistry()
    metrics = GatewayMetrics(registry)
    metrics.cached_keys.set_function(lambda: float(len(keys)))  # read at scrape time
    async with AsyncExitStack() as stack:
        routes = await start_engines(settings.models, settings.data_dir, stack, progress)
        if usage_sink is not None:
            ledger = Ledger(
                usage_sink,
                settings.data_dir / spool,
                clock,
                LedgerMetrics(registry),
                fsync=FsyncPolicy(settings.store.usage_fsync),
                owner=owner,
                write_timeout=settings.store.timeout,
                stop_timeout=settings.store.timeout,
                settle_late=quotas.settle_as if quotas is not None else None,
                owner_gone=owner_gone,
            )
            await ledger.start()
            stack.push_async_callback(ledger.stop)  # after the server stops: flushes every record
            meters = (*meters, ledger)
        if tracer is None:
            tracer = tracer_from_environment()
            stack.callback(tracer.shutdown)
        relay = Relay(tracer=tracer)
        await relay.open()
        stack.push_async_callback(relay.close)
        for route in routes:
            route.attach_queue(clock)
        probes = EndpointProbes(routes, clock)
        discovery = await start_discovery(
            settings.discovery,
            routes,
            clock,
            relay.session,
            stack,
            sources=model_sources,
            on_change=probes.sync,
        )
        probes.start(relay.session)
        stack.push_async_callback(probes.stop)
        registry.register(EndpointCollector(routes, clock))
        state: dict[str, Platform] = {}
        engine_metrics = EngineMetrics(relay.session, local_engine_metric_urls(routes))
        web = build_web_app(lambda: state["platform"].ready, mounts or {}, degraded=degraded)
        parts = GatewayParts(
            routes=routes,
            keys=keys,
            relay=relay,
            meter=MeterChain(metrics, *meters),
            metrics=metrics,
            clock=clock,
            max_body_bytes=settings.server.max_body_bytes,
            max_in_flight=settings.server.max_in_flight,
            quotas=quotas,
            tracer=tracer,
            on_key_use=on_key_use,
            access_log=settings.logging.access_log,
        )
        gateway = Gateway(parts, web)
        platform = Platform(
            settings,
            gateway,
            gateway,
            routes,
            keys,
            registry,
            discovery=discovery,
            metrics_app=build_metrics_app(registry, engine_metrics.exposition),
        )
        state["platform"] = platform
        platform.ready = True
        yield platform
        platform.ready = False

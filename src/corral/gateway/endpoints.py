"""Endpoint upkeep: active health probes, and endpoint state exported as metrics."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator

import aiohttp
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from corral.clock import Clock
from corral.gateway.routes import ModelRoute, RouteTable

log = logging.getLogger("corral.gateway.endpoints")

_PROBE_TIMEOUT = aiohttp.ClientTimeout(total=2.0)


async def probe_once(session: aiohttp.ClientSession, route: ModelRoute, clock: Clock) -> None:
    """Probe every endpoint of ``route`` (GET /models) and tell its outlier detector."""
    headers = {"Authorization": route.auth_header} if route.auth_header else {}
    for index, endpoint in enumerate(route.endpoints):
        try:
            async with session.get(
                f"{endpoint.base_url}/models", headers=headers, timeout=_PROBE_TIMEOUT
            ) as response:
                ok = response.status < 500
        except (aiohttp.ClientError, OSError, TimeoutError):
            ok = False
        now = clock.monotonic()
        if ok and route.outliers.is_ejected(index, now):
            # An engine can list its models and still fail every request: an ejection for
            # failed requests runs its back-off, then probation decides.
            continue
        ejection = route.outliers.record_probe(index, ok, now)
        route.sync_capacity(now)  # probes eject and re-admit
        if ejection is not None:
            log.warning(
                "endpoint ejected after failed probes",
                extra={"model": route.name, "endpoint": endpoint.base_url},
            )


async def probe_forever(session: aiohttp.ClientSession, route: ModelRoute, clock: Clock) -> None:
    """Probe ``route``'s endpoints every ``health.probe_interval`` seconds until cancelled."""
    interval = route.spec.health.probe_interval
    while True:
        await clock.sleep(interval)
        try:
            await probe_once(session, route, clock)
        except Exception:
            # Probing must outlive one bad round; routing falls back on passive ejection.
            log.exception("endpoint probes failed for %s", route.name)


def wants_probes(route: ModelRoute) -> bool:
    """Whether ``route`` gets active probes.

    Never for a model that may scale to zero: a probe is a request, so it would keep the
    autoscaler from ever reaching zero, and while there is no replica it would eject the
    endpoint the cold start is about to make ready.
    """
    return route.spec.health.probe_interval > 0 and route.cold_start is None


class EndpointProbes:
    """One probe task per route that wants probes, following the route table as it changes."""

    def __init__(self, routes: RouteTable, clock: Clock) -> None:
        self._routes = routes
        self._clock = clock
        self._session: aiohttp.ClientSession | None = None
        self._tasks: dict[int, tuple[ModelRoute, asyncio.Task[None]]] = {}

    def start(self, session: aiohttp.ClientSession) -> None:
        self._session = session
        self.sync()

    def sync(self) -> None:
        """Probe routes added to the table since the last call; stop probing those gone."""
        if self._session is None:
            return
        current = {id(r): r for r in self._routes if wants_probes(r)}
        for key in set(self._tasks) - set(current):
            self._tasks.pop(key)[1].cancel()
        loop = asyncio.get_running_loop()
        for key, route in current.items():
            if key not in self._tasks:
                task = loop.create_task(probe_forever(self._session, route, self._clock))
                self._tasks[key] = (route, task)

    async def stop(self) -> None:
        tasks = [task for _, task in self._tasks.values()]
        self._tasks.clear()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task


class EndpointCollector(Collector):
    """Endpoint state read at scrape time: in flight, ejected, latency to first byte."""

    def __init__(self, routes: RouteTable, clock: Clock) -> None:
        self._routes = routes
        self._clock = clock

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        labels = ["model", "replica"]
        in_flight = GaugeMetricFamily(
            "corral_endpoint_in_flight", "Requests in flight to each endpoint.", labels=labels
        )
        ejected = GaugeMetricFamily(
            "corral_endpoint_ejected",
            "1 while an endpoint is out of rotation after failures.",
            labels=labels,
        )
        ejections = CounterMetricFamily(
            "corral_endpoint_ejections",
            "Times an endpoint was taken out of rotation after failures (outlier detection).",
            labels=labels,
        )
        latency = GaugeMetricFamily(
            "corral_endpoint_first_byte_seconds",
            "Smoothed time to the first byte from each endpoint.",
            labels=labels,
        )
        now = self._clock.monotonic()
        for route in self._routes:
            for index, endpoint in enumerate(route.endpoints):
                values = [route.name, endpoint.replica]
                in_flight.add_metric(values, endpoint.in_flight)
                ejected.add_metric(values, float(route.outliers.is_ejected(index, now)))
                ejections.add_metric(values, route.outliers.ejections(index))
                if endpoint.latency_ewma is not None:
                    latency.add_metric(values, endpoint.latency_ewma)
        yield from (in_flight, ejected, ejections, latency)

    def describe(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        return iter(())

"""The local engines' metrics on the gateway's /metrics: one scrape target for `corral up`.

Each local engine serves its own /metrics on a loopback port nobody else can reach. At scrape
time the gateway reads them all, merges families that several engines export (they differ only
in their ``model`` label) and appends them to its own exposition.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Iterator

import aiohttp
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from corral.catalog import LocalEngineConfig
from corral.gateway.routes import RouteTable

log = logging.getLogger("corral.engine_metrics")
TIMEOUT_S = 2.0


def local_engine_metric_urls(routes: RouteTable) -> list[str]:
    """The /metrics URLs of the engines Corral runs itself (base ``…/v1`` → ``…/metrics``)."""
    return [
        endpoint.base_url.removesuffix("/").removesuffix("/v1") + "/metrics"
        for route in routes
        if isinstance(route.spec.engine, LocalEngineConfig)
        for endpoint in route.endpoints
    ]


class EngineMetrics:
    """Reads the local engines' expositions and renders them as one."""

    def __init__(self, session: aiohttp.ClientSession, urls: Iterable[str]) -> None:
        self._session = session
        self._urls = list(urls)

    async def exposition(self) -> bytes:
        """Every engine's metrics, families merged; an engine that does not answer is left out
        (and logged), so the gateway's own metrics are never lost to a slow engine."""
        if not self._urls:
            return b""
        texts = await asyncio.gather(*(self._read(url) for url in self._urls))
        families = merge(text_string_to_metric_families(t) for t in texts if t)
        registry = CollectorRegistry()
        registry.register(_Families(families))
        return generate_latest(registry)

    async def _read(self, url: str) -> str:
        try:
            async with self._session.get(
                url, timeout=aiohttp.ClientTimeout(total=TIMEOUT_S)
            ) as response:
                response.raise_for_status()
                return await response.text()
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning("engine metrics: %s did not answer (%s)", url, type(exc).__name__)
            return ""


def merge(expositions: Iterable[Iterable[Metric]]) -> list[Metric]:
    """One family per name, holding the samples of every exposition that has it."""
    merged: dict[str, Metric] = {}
    for families in expositions:
        for family in families:
            held = merged.get(family.name)
            if held is None:
                merged[family.name] = family
            else:
                held.samples.extend(family.samples)
    return list(merged.values())


class _Families(Collector):
    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterator[Metric]:
        return iter(self._families)

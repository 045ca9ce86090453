"""Model routes: the live endpoints behind each model, their health, and the choice of one."""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import aiohttp

from corral.catalog import ModelSpec, Timeouts
from corral.clock import Clock
from corral.errors import NotFound, Overloaded
from corral.gateway.policies.admission_queue import AdmissionQueue
from corral.gateway.policies.outliers import OutlierConfig, OutlierDetector
from corral.gateway.policies.retry_budget import RetryBudget
from corral.gateway.policies.routing import (
    EndpointSnapshot,
    RoutingKey,
    RoutingPolicy,
    choose,
    ewma,
)


@dataclass(slots=True)
class LiveEndpoint:
    """One engine replica and what the gateway knows of it now."""

    base_url: str
    weight: float = 1.0
    in_flight: int = 0
    available: bool = True  # False while drained by an operator or the GPU health agent
    latency_ewma: float | None = None

    @property
    def replica(self) -> str:
        """``host:port`` only: what metrics and traces may show of the endpoint."""
        parts = urlsplit(self.base_url)
        return parts.netloc.rsplit("@", 1)[-1]


@dataclass(slots=True)
class ModelRoute:
    """Where requests for one public model go, and how the gateway talks to it."""

    spec: ModelSpec
    endpoints: list[LiveEndpoint]
    auth_header: str | None = None  # "Bearer <upstream key>"; never logged
    rng: random.Random = field(default_factory=random.Random)
    whole_timeout: aiohttp.ClientTimeout = field(init=False)
    stream_timeout: aiohttp.ClientTimeout = field(init=False)
    policy: RoutingPolicy = field(init=False)
    outliers: OutlierDetector = field(init=False)
    retries: RetryBudget = field(init=False)
    queue: AdmissionQueue | None = None

    def __post_init__(self) -> None:
        t = self.spec.timeouts
        self.whole_timeout = aiohttp.ClientTimeout(
            total=t.total, sock_connect=t.connect, sock_read=t.first_byte
        )
        self.stream_timeout = aiohttp.ClientTimeout(
            total=t.total, sock_connect=t.connect, sock_read=max(t.first_byte, t.idle)
        )
        self.policy = RoutingPolicy(self.spec.routing)
        health = self.spec.health
        self.outliers = OutlierDetector(
            len(self.endpoints),
            OutlierConfig(
                consecutive_failures=health.eject_after,
                base_ejection_s=health.ejection_seconds,
                max_ejection_s=health.max_ejection_seconds,
                max_ejected_share=health.max_ejected_share,
            ),
        )
        self.retries = RetryBudget(ratio=health.retry_budget)

    def attach_queue(self, clock: Clock) -> None:
        """Bound each endpoint's in-flight requests and queue the rest fairly across teams."""
        fair = self.spec.fair_queueing
        if fair is not None:
            self.queue = AdmissionQueue(
                fair.max_in_flight_per_endpoint * len(self.endpoints),
                clock=clock,
                weights=fair.team_weights,
                max_queued=fair.max_queued,
                max_wait_s=fair.max_wait_seconds,
            )

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def timeouts(self) -> Timeouts:
        return self.spec.timeouts

    def cost_usd(self, prompt_tokens: int, completion_tokens: int) -> float:
        """What these tokens cost at the model's list prices."""
        price = self.spec.pricing
        return (prompt_tokens * price.input_per_1m + completion_tokens * price.output_per_1m) / 1e6

    def snapshot(self, now: float, exclude: frozenset[int] = frozenset()) -> list[EndpointSnapshot]:
        """What the routing policy sees: load, weight, health; ``exclude`` already failed."""
        return [
            EndpointSnapshot(
                index=i,
                in_flight=e.in_flight,
                weight=e.weight,
                available=e.available and i not in exclude,
                ejected=self.outliers.is_ejected(i, now),
                key=e.base_url,
                latency_ewma_s=e.latency_ewma,
            )
            for i, e in enumerate(self.endpoints)
        ]

    def pick(self, key: RoutingKey, now: float, exclude: frozenset[int] = frozenset()) -> int:
        """The endpoint index for the next attempt; Overloaded when none is routable."""
        endpoints = self.endpoints
        if (
            not exclude
            and len(endpoints) == 1
            and endpoints[0].available
            and not self.outliers.is_ejected(0, now)
        ):
            return 0
        decision = choose(self.policy, self.snapshot(now, exclude), key, self.rng)
        if decision.index is None:
            raise Overloaded(
                f"No replica of model {self.name!r} is available right now; try again shortly.",
                retry_after=5,
            )
        return decision.index

    def sync_capacity(self, now: float) -> None:
        """Queue slots follow the endpoints in rotation: ejecting one shrinks the capacity."""
        fair = self.spec.fair_queueing
        if self.queue is None or fair is None:
            return
        routable = sum(
            1
            for i, e in enumerate(self.endpoints)
            if e.available and not self.outliers.is_ejected(i, now)
        )
        capacity = fair.max_in_flight_per_endpoint * routable
        if capacity != self.queue.capacity:
            self.queue.set_capacity(capacity)

    def succeeded(self, index: int, first_byte_seconds: float | None) -> None:
        """An attempt on ``index`` was answered."""
        self.outliers.record_success(index)
        if first_byte_seconds is not None:
            endpoint = self.endpoints[index]
            endpoint.latency_ewma = ewma(endpoint.latency_ewma, first_byte_seconds)

    def failed(self, index: int, now: float) -> None:
        """An attempt on ``index`` failed (connect error, 5xx, timeout, broken stream)."""
        if self.outliers.record_failure(index, now) is not None:
            self.sync_capacity(now)


class RouteTable:
    """Public model names and aliases → routes."""

    def __init__(self, routes: list[ModelRoute]) -> None:
        self._routes = {r.name: r for r in routes}
        self._by_name: dict[str, ModelRoute] = {}
        for route in routes:
            for name in (route.name, *route.spec.aliases):
                self._by_name[name] = route

    def get(self, name: str) -> ModelRoute | None:
        return self._by_name.get(name)

    def resolve(self, name: str, allowed: list[str]) -> ModelRoute:
        """The route called ``name``; NotFound listing the ``allowed`` names otherwise."""
        route = self._by_name.get(name)
        if route is None or route.name not in allowed:
            raise NotFound(
                f"The model {name[:200]!r} does not exist. "
                f"Available models: {', '.join(allowed) or '(none)'}.",
                param="model",
                code="model_not_found",
            )
        return route

    def names(self) -> list[str]:
        return sorted(self._routes)

    def __iter__(self) -> Iterator[ModelRoute]:
        return iter(self._routes.values())

"""Model routes: the live endpoints behind each model, their health, and the choice of one."""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import aiohttp

from corral.catalog import ModelSpec, OpenAIEngine, Timeouts
from corral.clock import Clock
from corral.errors import NotFound, Overloaded
from corral.gateway.cold_start import ColdStart
from corral.gateway.policies.admission_queue import AdmissionQueue
from corral.gateway.policies.outliers import OutlierConfig, OutlierDetector
from corral.gateway.policies.quotas import cost_micros
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
    cold_start: ColdStart | None = None  # set for models that may have no replica
    ready_replicas: int | None = None  # as a model source last reported; None: unknown

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

    def cost_micros(self, prompt_tokens: int, completion_tokens: int) -> int:
        """What these tokens cost at the model's prices in micro-dollars, rounded up: the unit
        the budget counters settle and the ledger records, so the two agree to the unit."""
        return cost_micros(prompt_tokens, completion_tokens, self.spec.pricing)

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


@dataclass(frozen=True, slots=True)
class LearnedRoute:
    """A model learned at runtime, as the route table takes it."""

    spec: ModelSpec
    cold_start: ColdStart | None = None
    ready_replicas: int | None = None


@dataclass(frozen=True, slots=True)
class TableChanges:
    """What one reconciliation did, by public model name."""

    added: tuple[str, ...] = ()
    updated: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    shadowed: tuple[str, ...] = ()  # learned, but a configured model has the name

    def __bool__(self) -> bool:
        return bool(self.added or self.updated or self.removed)


@dataclass(frozen=True, slots=True)
class _View:
    """One immutable generation of the table; requests read whichever generation is current."""

    routes: dict[str, ModelRoute]
    by_name: dict[str, ModelRoute]
    names: list[str]

    @classmethod
    def of(cls, routes: Iterable[ModelRoute]) -> _View:
        by_route = {r.name: r for r in routes}
        by_name: dict[str, ModelRoute] = {}
        for route in by_route.values():
            for name in (route.name, *route.spec.aliases):
                by_name[name] = route
        return cls(by_route, by_name, sorted(by_route))


class RouteTable:
    """Public model names and aliases → routes: the configured ones, and those learned later.

    Lookups read one dictionary of the current generation; ``reconcile`` builds the next
    generation aside and swaps it in with one assignment, so requests never take a lock.
    """

    def __init__(self, routes: list[ModelRoute]) -> None:
        self._configured = {r.name: r for r in routes}
        self._learned: dict[str, ModelRoute] = {}
        self._view = _View.of(routes)

    def get(self, name: str) -> ModelRoute | None:
        return self._view.by_name.get(name)

    def resolve(self, name: str, allowed: list[str]) -> ModelRoute:
        """The route called ``name``; NotFound listing the ``allowed`` names otherwise."""
        route = self._view.by_name.get(name)
        if route is None or route.name not in allowed:
            raise NotFound(
                f"The model {name[:200]!r} does not exist. "
                f"Available models: {', '.join(allowed) or '(none)'}.",
                param="model",
                code="model_not_found",
            )
        return route

    def names(self) -> list[str]:
        return list(self._view.names)

    def learned(self) -> list[str]:
        """Names of the routes learned at runtime."""
        return sorted(self._learned)

    def __iter__(self) -> Iterator[ModelRoute]:
        return iter(self._view.routes.values())  # a generation is never changed

    def reconcile(self, learned: Iterable[LearnedRoute], clock: Clock) -> TableChanges:
        """Make the learned routes exactly ``learned``; configured models are never touched.

        A route whose spec is unchanged stays the same object (its outlier and latency state
        with it); a changed one is rebuilt around the endpoints it keeps, so requests in flight
        finish on the old object and their in-flight counts stay right.
        """
        configured = {n for r in self._configured.values() for n in (r.name, *r.spec.aliases)}
        wanted: dict[str, LearnedRoute] = {}
        shadowed = []
        for item in learned:
            if item.spec.name in configured:
                shadowed.append(item.spec.name)
            else:
                wanted[item.spec.name] = item
        added: list[str] = []
        updated: list[str] = []
        routes: dict[str, ModelRoute] = {}
        for name, item in wanted.items():
            old = self._learned.get(name)
            if old is not None and old.spec == item.spec:
                route = old
                route.cold_start, route.ready_replicas = item.cold_start, item.ready_replicas
            else:
                route = _rebuilt(item, old, clock)
                (added if old is None else updated).append(name)
            routes[name] = route
        removed = sorted(set(self._learned) - set(routes))
        self._learned = routes
        self._view = _View.of([*self._configured.values(), *routes.values()])
        return TableChanges(tuple(added), tuple(updated), tuple(removed), tuple(shadowed))


def _rebuilt(item: LearnedRoute, old: ModelRoute | None, clock: Clock) -> ModelRoute:
    """A route for ``item`` that keeps the live endpoints ``old`` shares with it."""
    engine = item.spec.engine
    if not isinstance(engine, OpenAIEngine):
        raise TypeError(f"a learned model is served by an OpenAI-compatible engine: {engine!r}")
    kept = {e.base_url: e for e in old.endpoints} if old is not None else {}
    endpoints = []
    for configured in engine.endpoints:
        endpoint = kept.get(configured.url) or LiveEndpoint(configured.url)
        endpoint.weight = configured.weight
        endpoints.append(endpoint)
    route = ModelRoute(
        item.spec, endpoints, cold_start=item.cold_start, ready_replicas=item.ready_replicas
    )
    route.attach_queue(clock)
    return route

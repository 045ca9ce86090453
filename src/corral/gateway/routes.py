"""Model routes: the live endpoints behind each catalog model, and the choice of one."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import aiohttp

from corral.catalog import ModelSpec, Timeouts
from corral.errors import Overloaded
from corral.gateway.policies.routing import EndpointSnapshot, least_outstanding


@dataclass(slots=True)
class LiveEndpoint:
    """One engine replica and what the gateway knows of it now."""

    base_url: str
    weight: float = 1.0
    in_flight: int = 0
    available: bool = True

    def snapshot(self, index: int) -> EndpointSnapshot:
        return EndpointSnapshot(index, self.in_flight, self.weight, self.available)


@dataclass(slots=True)
class ModelRoute:
    """Where requests for one public model go, and how the gateway talks to it."""

    spec: ModelSpec
    endpoints: list[LiveEndpoint]
    auth_header: str | None = None  # "Bearer <upstream key>"; never logged
    rng: random.Random = field(default_factory=random.Random)
    whole_timeout: aiohttp.ClientTimeout = field(init=False)
    stream_timeout: aiohttp.ClientTimeout = field(init=False)

    def __post_init__(self) -> None:
        t = self.spec.timeouts
        self.whole_timeout = aiohttp.ClientTimeout(
            total=t.total, sock_connect=t.connect, sock_read=t.first_byte
        )
        self.stream_timeout = aiohttp.ClientTimeout(
            total=t.total, sock_connect=t.connect, sock_read=max(t.first_byte, t.idle)
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

    def choose(self) -> LiveEndpoint:
        """The endpoint for the next request; Overloaded when none is available."""
        endpoints = self.endpoints
        if len(endpoints) == 1 and endpoints[0].available:
            return endpoints[0]
        index = least_outstanding([e.snapshot(i) for i, e in enumerate(endpoints)], self.rng)
        if index is None:
            raise Overloaded(
                f"No replica of model {self.name!r} is available right now; try again shortly.",
                retry_after=5,
            )
        return endpoints[index]


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

    def names(self) -> list[str]:
        return sorted(self._routes)

    def routes(self) -> list[ModelRoute]:
        return list(self._routes.values())

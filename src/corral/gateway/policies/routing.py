"""Routing policies: which endpoint of a model serves the next request."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from corral.gateway.policies.hashring import (
    DEFAULT_VIRTUAL_NODES,
    bounded_lookup,
    cached_ring,
    hash64,
    load_bound,
)

DEFAULT_LOAD_FACTOR = 0.25
"""ε for bounded-load affinity: an endpoint may hold up to 1.25× the average in flight."""


@dataclass(frozen=True, slots=True)
class EndpointSnapshot:
    """What a policy may know about one endpoint."""

    index: int
    in_flight: int
    weight: float = 1.0
    available: bool = True
    ejected: bool = False
    """Taken out of rotation by the outlier detector (see ``outliers``)."""
    key: str = ""
    """Stable identity on the hash ring (the base URL); empty means ``endpoint-<index>``."""
    latency_ewma_s: float | None = None
    """Recent latency to first byte, smoothed; None before the first answer."""

    @property
    def routable(self) -> bool:
        """True when the endpoint may receive new requests."""
        return self.available and not self.ejected

    @property
    def identity(self) -> str:
        """The name this endpoint has on the hash ring."""
        return self.key or f"endpoint-{self.index}"


class RoutingPolicy(StrEnum):
    """How a model spreads requests over its endpoints (``routing`` in the model spec)."""

    LEAST_OUTSTANDING = "least-outstanding"
    PREFIX_AFFINITY = "prefix-affinity"
    SESSION_AFFINITY = "session-affinity"
    WEIGHTED_RANDOM = "weighted-random"


class RouteReason(StrEnum):
    """Why a decision came out as it did (for logs, metrics and tests)."""

    FEWEST_IN_FLIGHT = "fewest-in-flight"
    AFFINITY_HOME = "affinity-home"
    AFFINITY_SPILL = "affinity-spill"
    NO_AFFINITY_KEY = "no-affinity-key"
    WEIGHTED_DRAW = "weighted-draw"
    NONE_ROUTABLE = "none-routable"


@dataclass(frozen=True, slots=True)
class RoutingKey:
    """What affinity policies key on: the prompt's leading bytes and the session id."""

    prefix: bytes | None = None
    session: str | None = None


@dataclass(frozen=True, slots=True)
class RouteDecision:
    """The chosen endpoint's index (None when nothing is routable) and why."""

    index: int | None
    policy: RoutingPolicy
    reason: RouteReason
    spilled: int = 0
    """Affinity only: replicas passed over on the ring because they were at the load bound."""


def least_outstanding(endpoints: Sequence[EndpointSnapshot], rng: random.Random) -> int | None:
    """The routable endpoint with the fewest requests in flight (ties broken at random)."""
    best: list[int] = []
    fewest = 0
    for endpoint in endpoints:
        if not endpoint.routable:
            continue
        if not best or endpoint.in_flight < fewest:
            best, fewest = [endpoint.index], endpoint.in_flight
        elif endpoint.in_flight == fewest:
            best.append(endpoint.index)
    if not best:
        return None
    return best[0] if len(best) == 1 else rng.choice(best)


def weighted_random(endpoints: Sequence[EndpointSnapshot], rng: random.Random) -> int | None:
    """A routable endpoint drawn with probability proportional to its weight."""
    candidates = [e for e in endpoints if e.routable and e.weight > 0]
    if not candidates:
        return None
    return rng.choices(candidates, weights=[e.weight for e in candidates])[0].index


def affinity(
    endpoints: Sequence[EndpointSnapshot],
    key: bytes,
    *,
    load_factor: float = DEFAULT_LOAD_FACTOR,
    virtual_nodes: int = DEFAULT_VIRTUAL_NODES,
) -> tuple[int | None, int]:
    """Consistent hashing with bounded load: (endpoint index, replicas spilled past).

    The key's home is its successor on a ring of every endpoint's identity, healthy or not, so
    adding or removing one replica moves about 1/N of keys and an ejected replica's keys come
    back to it when it is re-admitted. A home holding ``load_bound`` or more spills the request
    to the next replica clockwise.
    """
    if load_factor < 0:
        raise ValueError("load_factor must be zero or more")
    ring = cached_ring(tuple(e.identity for e in endpoints), virtual_nodes)
    routable = [e for e in endpoints if e.routable]
    bound = load_bound(sum(e.in_flight for e in routable), len(routable), load_factor)
    position, hops = bounded_lookup(
        ring,
        hash64(key),
        lambda p: endpoints[p].routable,
        lambda p: endpoints[p].in_flight,
        bound,
    )
    return (None if position is None else endpoints[position].index), hops


def choose(
    policy: RoutingPolicy,
    endpoints: Sequence[EndpointSnapshot],
    key: RoutingKey,
    rng: random.Random,
    *,
    load_factor: float = DEFAULT_LOAD_FACTOR,
) -> RouteDecision:
    """The endpoint ``policy`` picks for a request described by ``key``."""
    if policy in (RoutingPolicy.PREFIX_AFFINITY, RoutingPolicy.SESSION_AFFINITY):
        affinity_key = (
            key.prefix
            if policy is RoutingPolicy.PREFIX_AFFINITY
            else (key.session.encode() if key.session is not None else None)
        )
        if affinity_key is not None:
            index, hops = affinity(endpoints, affinity_key, load_factor=load_factor)
            reason = RouteReason.AFFINITY_SPILL if hops else RouteReason.AFFINITY_HOME
            return _decided(index, policy, reason, hops)
        index = least_outstanding(endpoints, rng)
        return _decided(index, policy, RouteReason.NO_AFFINITY_KEY)
    if policy is RoutingPolicy.WEIGHTED_RANDOM:
        return _decided(weighted_random(endpoints, rng), policy, RouteReason.WEIGHTED_DRAW)
    index = least_outstanding(endpoints, rng)
    return _decided(index, policy, RouteReason.FEWEST_IN_FLIGHT)


def _decided(
    index: int | None, policy: RoutingPolicy, reason: RouteReason, spilled: int = 0
) -> RouteDecision:
    if index is None:
        return RouteDecision(None, policy, RouteReason.NONE_ROUTABLE)
    return RouteDecision(index, policy, reason, spilled)


def ewma(previous: float | None, sample: float, alpha: float = 0.3) -> float:
    """Exponentially weighted moving average: ``alpha`` of the new sample, the rest history."""
    if not 0.0 < alpha <= 1.0:
        raise ValueError("alpha must be in (0, 1]")
    return sample if previous is None else alpha * sample + (1.0 - alpha) * previous

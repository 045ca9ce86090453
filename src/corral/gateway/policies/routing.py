"""Routing policies: which endpoint of a model serves the next request."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class EndpointSnapshot:
    """What a policy may know about one endpoint."""

    index: int
    in_flight: int
    weight: float = 1.0
    available: bool = True


def least_outstanding(endpoints: Sequence[EndpointSnapshot], rng: random.Random) -> int | None:
    """The available endpoint with the fewest requests in flight (ties broken at random)."""
    best: list[int] = []
    fewest = 0
    for endpoint in endpoints:
        if not endpoint.available:
            continue
        if not best or endpoint.in_flight < fewest:
            best, fewest = [endpoint.index], endpoint.in_flight
        elif endpoint.in_flight == fewest:
            best.append(endpoint.index)
    if not best:
        return None
    return best[0] if len(best) == 1 else rng.choice(best)

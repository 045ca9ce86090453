"""Consistent hashing: a ring of virtual nodes over endpoint identities, and bounded-load lookup."""

from __future__ import annotations

import bisect
import hashlib
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache

DEFAULT_VIRTUAL_NODES = 160
"""Points per endpoint on the ring; 160 keeps each endpoint's share within a few percent."""


def hash64(data: bytes) -> int:
    """A stable 64-bit hash (BLAKE2b), the same in every process and run."""
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "big")


@dataclass(frozen=True, slots=True)
class HashRing:
    """Points on a 64-bit ring, each owned by one endpoint (its position in ``identities``)."""

    identities: tuple[str, ...]
    points: tuple[int, ...]
    owners: tuple[int, ...]

    @classmethod
    def build(
        cls, identities: Sequence[str], virtual_nodes: int = DEFAULT_VIRTUAL_NODES
    ) -> HashRing:
        """A ring with ``virtual_nodes`` points per identity; positions follow ``identities``."""
        if virtual_nodes < 1:
            raise ValueError("virtual_nodes must be at least 1")
        placed = sorted(
            (hash64(f"{identity}#{replica}".encode()), owner)
            for owner, identity in enumerate(identities)
            for replica in range(virtual_nodes)
        )
        return cls(
            identities=tuple(identities),
            points=tuple(point for point, _ in placed),
            owners=tuple(owner for _, owner in placed),
        )

    def walk(self, key_hash: int) -> Iterator[int]:
        """Owners clockwise from ``key_hash``, each endpoint once, the key's home first."""
        if not self.points:
            return
        start = bisect.bisect_left(self.points, key_hash)
        seen: set[int] = set()
        total = len(self.points)
        for step in range(total):
            owner = self.owners[(start + step) % total]
            if owner not in seen:
                seen.add(owner)
                yield owner
                if len(seen) == len(self.identities):
                    return

    def home(self, key_hash: int) -> int | None:
        """The endpoint that owns ``key_hash`` regardless of load or health."""
        return next(self.walk(key_hash), None)


@lru_cache(maxsize=256)
def cached_ring(
    identities: tuple[str, ...], virtual_nodes: int = DEFAULT_VIRTUAL_NODES
) -> HashRing:
    """The ring for an endpoint set, built once per distinct set (routing asks per request)."""
    return HashRing.build(identities, virtual_nodes)


def load_bound(total_in_flight: int, routable: int, epsilon: float) -> int:
    """Most requests one endpoint may hold, counting the new one: ceil((1+ε)·average)."""
    if routable <= 0:
        return 0
    return max(1, math.ceil((1.0 + epsilon) * (total_in_flight + 1) / routable))


def bounded_lookup(
    ring: HashRing,
    key_hash: int,
    routable: Callable[[int], bool],
    in_flight: Callable[[int], int],
    bound: int,
) -> tuple[int | None, int]:
    """First routable endpoint clockwise holding fewer than ``bound``; (position, hops skipped).

    Unroutable endpoints are skipped without counting as a hop, so ejecting one replica moves
    only the keys it owned. With ``bound`` from :func:`load_bound` some routable endpoint is
    always under it; should callers pass a tighter bound, the least loaded one is returned.
    """
    hops = 0
    fallback: int | None = None
    for owner in ring.walk(key_hash):
        if not routable(owner):
            continue
        if in_flight(owner) < bound:
            return owner, hops
        if fallback is None or in_flight(owner) < in_flight(fallback):
            fallback = owner
        hops += 1
    return fallback, hops

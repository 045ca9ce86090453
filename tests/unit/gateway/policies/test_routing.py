"""Routing policies over hand-built snapshots: spread, tie-breaks, affinity stability, spill."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence

import pytest

from corral.gateway.policies.hashring import HashRing, hash64, load_bound
from corral.gateway.policies.routing import (
    EndpointSnapshot,
    RouteDecision,
    RouteReason,
    RoutingKey,
    RoutingPolicy,
    affinity,
    choose,
    ewma,
    least_outstanding,
)

KEYS = [f"prompt-{i}".encode() for i in range(10_000)]


def fleet(*in_flight: int, names: str = "abcdefghij") -> list[EndpointSnapshot]:
    return [
        EndpointSnapshot(i, n, key=f"http://{names[i]}:8000/v1") for i, n in enumerate(in_flight)
    ]


def homes(endpoints: Sequence[EndpointSnapshot]) -> dict[bytes, str]:
    """Where each key lands with no load, by endpoint identity."""
    out: dict[bytes, str] = {}
    for key in KEYS:
        index, _ = affinity(endpoints, key)
        assert index is not None
        out[key] = endpoints[index].identity
    return out


def moved(before: dict[bytes, str], after: dict[bytes, str]) -> float:
    return sum(before[k] != after[k] for k in KEYS) / len(KEYS)


def test_least_outstanding_picks_the_emptiest() -> None:
    assert least_outstanding(fleet(3, 1, 2), random.Random(0)) == 1


def test_least_outstanding_breaks_ties_at_random() -> None:
    rng = random.Random(7)
    picks = Counter(least_outstanding(fleet(1, 0, 0, 0), rng) for _ in range(3000))
    assert set(picks) == {1, 2, 3}
    assert all(800 < picks[i] < 1200 for i in (1, 2, 3))


def test_least_outstanding_skips_unavailable_and_ejected() -> None:
    endpoints = [
        EndpointSnapshot(0, 0, available=False),
        EndpointSnapshot(1, 0, ejected=True),
        EndpointSnapshot(2, 9),
    ]
    assert least_outstanding(endpoints, random.Random(0)) == 2


def test_positional_snapshot_still_builds() -> None:
    snapshot = EndpointSnapshot(4, 2, 0.5, False)
    assert (snapshot.weight, snapshot.available, snapshot.routable) == (0.5, False, False)
    assert snapshot.identity == "endpoint-4"


def test_weighted_random_follows_weights() -> None:
    endpoints = [EndpointSnapshot(i, 0, weight=w) for i, w in enumerate((1.0, 3.0, 6.0))]
    rng = random.Random(1)
    picks = Counter(
        choose(RoutingPolicy.WEIGHTED_RANDOM, endpoints, RoutingKey(), rng).index
        for _ in range(20_000)
    )
    for index, share in ((0, 0.1), (1, 0.3), (2, 0.6)):
        assert picks[index] / 20_000 == pytest.approx(share, abs=0.015)


def test_weighted_random_ignores_ejected_endpoints() -> None:
    endpoints = [EndpointSnapshot(0, 0, weight=9.0, ejected=True), EndpointSnapshot(1, 0)]
    rng = random.Random(2)
    assert {
        choose(RoutingPolicy.WEIGHTED_RANDOM, endpoints, RoutingKey(), rng).index for _ in range(50)
    } == {1}


@pytest.mark.parametrize("policy", list(RoutingPolicy))
def test_nothing_routable_is_a_decision_not_an_error(policy: RoutingPolicy) -> None:
    endpoints = [EndpointSnapshot(0, 0, ejected=True), EndpointSnapshot(1, 0, available=False)]
    decision = choose(policy, endpoints, RoutingKey(b"p", "s"), random.Random(0))
    assert decision == RouteDecision(None, policy, RouteReason.NONE_ROUTABLE)


def test_ring_spreads_keys_evenly() -> None:
    counts = Counter(homes(fleet(0, 0, 0, 0, 0)).values())
    assert len(counts) == 5
    assert all(abs(n / len(KEYS) - 0.2) < 0.04 for n in counts.values())


def test_ring_walk_visits_every_endpoint_once() -> None:
    ring = HashRing.build(["a", "b", "c"], virtual_nodes=8)
    for key in (0, 2**63, 2**64 - 1):
        assert sorted(ring.walk(key)) == [0, 1, 2]
    assert HashRing.build([]).home(5) is None


def test_adding_a_replica_moves_about_one_in_n_keys() -> None:
    before = homes(fleet(0, 0, 0, 0))
    after = homes(fleet(0, 0, 0, 0, 0))
    fraction = moved(before, after)
    assert fraction == pytest.approx(1 / 5, abs=0.04)
    assert all(after[k] == "http://e:8000/v1" for k in KEYS if before[k] != after[k])


def test_removing_a_replica_moves_only_its_keys() -> None:
    before = homes(fleet(0, 0, 0, 0, 0))
    remaining = [e for e in fleet(0, 0, 0, 0, 0) if e.index != 2]
    after = homes([EndpointSnapshot(i, 0, key=e.key) for i, e in enumerate(remaining)])
    assert moved(before, after) == pytest.approx(1 / 5, abs=0.04)
    assert all(before[k] == "http://c:8000/v1" for k in KEYS if before[k] != after[k])


def test_ejection_moves_only_the_ejected_replicas_keys_and_they_come_back() -> None:
    healthy = fleet(0, 0, 0, 0)
    ejected = [EndpointSnapshot(e.index, 0, ejected=e.index == 1, key=e.key) for e in healthy]
    before, during = homes(healthy), homes(ejected)
    assert all(before[k] == "http://b:8000/v1" for k in KEYS if before[k] != during[k])
    assert "http://b:8000/v1" not in during.values()
    assert homes(healthy) == before


def test_the_key_hash_is_the_same_in_every_process() -> None:
    # Python's hash() is salted per process; gateway replicas must agree on homes.
    assert hash64(b"corral") == 0x68E72C54C1BFC3AE


def test_prefix_affinity_sends_a_prefix_home_every_time() -> None:
    endpoints, rng = fleet(0, 0, 0), random.Random(0)
    key = RoutingKey(prefix=b"system\nYou are a helpful assistant.\n")
    decisions = {choose(RoutingPolicy.PREFIX_AFFINITY, endpoints, key, rng) for _ in range(20)}
    assert len(decisions) == 1
    assert decisions.pop().reason is RouteReason.AFFINITY_HOME


def test_session_affinity_keys_on_the_session_not_the_prompt() -> None:
    endpoints, rng = fleet(0, 0, 0, 0), random.Random(0)
    chosen = {
        choose(
            RoutingPolicy.SESSION_AFFINITY, endpoints, RoutingKey(f"p{i}".encode(), "sess-42"), rng
        ).index
        for i in range(50)
    }
    assert len(chosen) == 1
    sessions = Counter(
        choose(RoutingPolicy.SESSION_AFFINITY, endpoints, RoutingKey(None, f"s{i}"), rng).index
        for i in range(2000)
    )
    assert len(sessions) == 4


@pytest.mark.parametrize(
    ("policy", "key"),
    [
        (RoutingPolicy.PREFIX_AFFINITY, RoutingKey(None, "session")),
        (RoutingPolicy.SESSION_AFFINITY, RoutingKey(b"prefix", None)),
    ],
)
def test_affinity_without_its_key_falls_back_to_least_outstanding(
    policy: RoutingPolicy, key: RoutingKey
) -> None:
    decision = choose(policy, fleet(4, 0, 7), key, random.Random(0))
    assert decision == RouteDecision(1, policy, RouteReason.NO_AFFINITY_KEY)


def test_load_bound_is_ceil_of_one_plus_epsilon_times_average() -> None:
    assert load_bound(total_in_flight=11, routable=4, epsilon=0.25) == 4  # ceil(1.25 * 3)
    assert load_bound(total_in_flight=0, routable=4, epsilon=0.25) == 1
    assert load_bound(total_in_flight=5, routable=0, epsilon=0.25) == 0


def test_a_hot_home_spills_to_the_next_replica_on_the_ring() -> None:
    key = RoutingKey(prefix=b"shared system prompt")
    idle = fleet(0, 0, 0, 0)
    home = choose(RoutingPolicy.PREFIX_AFFINITY, idle, key, random.Random(0)).index
    assert home is not None
    ring = HashRing.build([e.identity for e in idle])
    successor = list(ring.walk(hash64(key.prefix or b"")))[1]
    loaded = [EndpointSnapshot(e.index, 6 if e.index == home else 1, key=e.key) for e in idle]
    # average with the new request = (6 + 3 + 1) / 4 = 2.5, bound ceil(1.25 * 2.5) = 4 <= 6
    decision = choose(RoutingPolicy.PREFIX_AFFINITY, loaded, key, random.Random(0))
    assert decision == RouteDecision(
        successor, RoutingPolicy.PREFIX_AFFINITY, RouteReason.AFFINITY_SPILL, spilled=1
    )


def test_a_home_under_the_bound_keeps_its_keys() -> None:
    key = b"shared system prompt"
    idle = fleet(0, 0, 0, 0)
    home, _ = affinity(idle, key)
    busy = [EndpointSnapshot(e.index, 3 if e.index == home else 2, key=e.key) for e in idle]
    assert affinity(busy, key) == (home, 0)  # bound ceil(1.25 * 10 / 4) = 4 > 3


def test_bounded_load_caps_every_replica_under_one_hot_prefix() -> None:
    endpoints = fleet(0, 0, 0, 0)
    for _ in range(100):  # 100 requests share one prefix and none finish
        index, _ = affinity(endpoints, b"everyone uses this system prompt")
        assert index is not None
        endpoints[index] = EndpointSnapshot(
            index, endpoints[index].in_flight + 1, key=endpoints[index].key
        )
    loads = [e.in_flight for e in endpoints]
    assert sum(loads) == 100
    assert max(loads) <= load_bound(99, 4, 0.25)  # 32: never more than 1.25 × the average


def test_load_factor_must_not_be_negative() -> None:
    with pytest.raises(ValueError, match="load_factor"):
        affinity(fleet(0), b"k", load_factor=-0.1)


def test_ewma_smooths_latency() -> None:
    assert ewma(None, 2.0) == 2.0
    assert ewma(1.0, 2.0, alpha=0.5) == 1.5
    with pytest.raises(ValueError, match="alpha"):
        ewma(1.0, 1.0, alpha=0.0)

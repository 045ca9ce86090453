"""Discrete-event simulation of a saturated model: a flooding team cannot starve a quiet one."""

from __future__ import annotations

import heapq
import itertools
import random
import statistics
from collections.abc import Mapping
from dataclasses import dataclass

import pytest

from corral.gateway.policies.fair_queue import FairQueue

SLOTS = 8  # max in flight per endpoint × endpoints
TOKENS_PER_SLOT_S = 100.0
MEAN_COST = 600.0
CAPACITY_RPS = SLOTS * TOKENS_PER_SLOT_S / MEAN_COST  # ≈ 1.33 requests/s
HORIZON_S = 3000.0
WARM_UP_S = 300.0


@dataclass(slots=True)
class Request:
    team: str
    cost: float
    arrived: float
    started: float | None = None

    @property
    def latency(self) -> float:
        """Queue wait plus service time."""
        assert self.started is not None
        return self.started - self.arrived + self.cost / TOKENS_PER_SLOT_S


def arrivals(seed: int, team: str, rate_per_s: float) -> list[Request]:
    rng, now, out = random.Random(seed), 0.0, []
    while (now := now + rng.expovariate(rate_per_s)) < HORIZON_S:
        out.append(Request(team, float(rng.randint(200, 1000)), now))
    return out


def simulate(
    requests: list[Request], weights: Mapping[str, float] | None = None, *, fifo: bool = False
) -> list[Request]:
    """Serve ``requests`` through SLOTS slots and a FairQueue; returns those that started.

    ``fifo`` queues everyone as one team: first come, first served, as a control.
    """
    queue: FairQueue[Request] = FairQueue(dict(weights or {}), max_items=64)
    order = itertools.count()
    events = [(r.arrived, next(order), r, True) for r in requests]
    heapq.heapify(events)
    in_flight, started = 0, []

    def start(request: Request, now: float) -> None:
        nonlocal in_flight
        in_flight += 1
        request.started = now
        started.append(request)
        done = now + request.cost / TOKENS_PER_SLOT_S
        heapq.heappush(events, (done, next(order), request, False))

    while events:
        now, _, request, is_arrival = heapq.heappop(events)
        if not is_arrival:
            in_flight -= 1
            if (popped := queue.pop(now)).item is not None:
                start(popped.item, now)
        elif in_flight < SLOTS and not queue:
            start(request, now)
        else:
            team = "everyone" if fifo else request.team
            queue.push(team, request.cost, request, now, deadline=now + 120.0)
    return started


def p50_latency(served: list[Request], team: str) -> float:
    return statistics.median(r.latency for r in served if r.team == team)


def token_share(served: list[Request], team: str) -> float:
    window = [r for r in served if r.started is not None and r.started >= WARM_UP_S]
    return sum(r.cost for r in window if r.team == team) / sum(r.cost for r in window)


def test_a_flooding_team_does_not_slow_a_quiet_team_down() -> None:
    quiet_rate = 0.1 * CAPACITY_RPS
    quiet, flood = arrivals(1, "b", quiet_rate), arrivals(2, "a", 20 * quiet_rate)
    alone = p50_latency(simulate(arrivals(1, "b", quiet_rate)), "b")
    served = simulate(quiet + flood)
    loaded = p50_latency(served, "b")
    assert len(flood) > 1.9 * CAPACITY_RPS * HORIZON_S  # a really is far past capacity
    assert all(r.started is not None for r in quiet)  # b never lost a request
    assert loaded <= 2.0 * alone
    b_waits = [r.started - r.arrived for r in quiet if r.started is not None]
    assert statistics.median(b_waits) < MEAN_COST / TOKENS_PER_SLOT_S  # under one service time


def test_without_fair_queuing_the_flood_does_slow_the_quiet_team() -> None:
    quiet_rate = 0.1 * CAPACITY_RPS
    alone = p50_latency(simulate(arrivals(1, "b", quiet_rate)), "b")
    quiet, flood = arrivals(1, "b", quiet_rate), arrivals(2, "a", 20 * quiet_rate)
    served = simulate(quiet + flood, fifo=True)
    assert p50_latency(served, "b") > 5 * alone
    assert sum(r.started is None for r in quiet) > len(quiet) / 3  # shed or expired


@pytest.mark.parametrize("weight_a", [1.0, 3.0])
def test_backlogged_teams_get_tokens_in_proportion_to_their_weights(weight_a: float) -> None:
    b_rate = 0.6 * CAPACITY_RPS  # more than b's share under either weighting
    requests = arrivals(3, "b", b_rate) + arrivals(4, "a", 20 * b_rate)
    served = simulate(requests, weights={"a": weight_a, "b": 1.0})
    expected = 1.0 / (weight_a + 1.0)
    assert token_share(served, "b") == pytest.approx(expected, rel=0.10)

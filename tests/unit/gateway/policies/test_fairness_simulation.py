"""Discrete-event simulation of a saturated model: a flooding team cannot starve a quiet one."""

from __future__ import annotations

import heapq
import itertools
import random
import statistics
from collections.abc import Mapping
from dataclasses import dataclass

import pytest

from corral.gateway.policies.fair_queue import FairQueue, Served, TokenDemand

SLOTS = 8  # max in flight per endpoint × endpoints
TOKENS_PER_SLOT_S = 100.0
MEAN_COST = 600.0
CAPACITY_RPS = SLOTS * TOKENS_PER_SLOT_S / MEAN_COST  # ≈ 1.33 requests/s
HORIZON_S = 3000.0
WARM_UP_S = 300.0


@dataclass(slots=True)
class Request:
    team: str
    cost: int
    """Tokens it is served (its service time is cost / TOKENS_PER_SLOT_S)."""
    arrived: float
    allowance: int = 0
    """What it asks for (max_tokens); 0: exactly its cost."""
    started: float | None = None

    @property
    def latency(self) -> float:
        """Queue wait plus service time."""
        assert self.started is not None
        return self.started - self.arrived + self.cost / TOKENS_PER_SLOT_S


def arrivals(seed: int, team: str, rate_per_s: float, allowance: int = 0) -> list[Request]:
    rng, now, out = random.Random(seed), 0.0, []
    while (now := now + rng.expovariate(rate_per_s)) < HORIZON_S:
        out.append(Request(team, rng.randint(200, 1000), now, allowance))
    return out


def simulate(
    requests: list[Request],
    weights: Mapping[str, float] | None = None,
    *,
    fifo: bool = False,
    charge_allowance: bool = False,
) -> list[Request]:
    """Serve ``requests`` through SLOTS slots and a FairQueue; returns those that started.

    ``fifo`` queues everyone as one team: first come, first served, as a control;
    ``charge_allowance`` charges what requests asked for instead of what they got (the old rule).
    """
    queue: FairQueue[Request] = FairQueue(dict(weights or {}), max_items=64)
    order = itertools.count()
    events = [(r.arrived, next(order), r, -1) for r in requests]
    heapq.heapify(events)
    started: list[Request] = []
    in_flight = 0

    def team_of(request: Request) -> str:
        return "everyone" if fifo else request.team

    def demand(request: Request) -> TokenDemand:
        return TokenDemand(0, request.allowance or request.cost)

    def start(request: Request, now: float, lease: int) -> None:
        nonlocal in_flight
        in_flight += 1
        request.started = now
        started.append(request)
        done = now + request.cost / TOKENS_PER_SLOT_S
        heapq.heappush(events, (done, next(order), request, lease))

    while events:
        now, _, request, lease = heapq.heappop(events)
        if lease >= 0:  # a request ends
            in_flight -= 1
            charged = request.allowance if charge_allowance and request.allowance else request.cost
            queue.finish(lease, Served(charged, 0))
            popped = queue.pop(now)
            if popped.item is not None and popped.lease is not None:
                start(popped.item, now, popped.lease)
        elif in_flight < SLOTS and not queue:
            start(request, now, queue.admit(team_of(request), demand(request)))
        else:
            queue.push(team_of(request), demand(request), request, now, deadline=now + 120.0)
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


def test_a_quiet_team_without_max_tokens_is_not_slowed_by_a_flood_that_sets_it() -> None:
    # b asks for up to 4096 tokens and gets 200-1000: a fifth of capacity, under its fair half
    quiet_rate = 0.2 * CAPACITY_RPS
    alone = p50_latency(simulate(arrivals(1, "b", quiet_rate, allowance=4096)), "b")
    quiet = arrivals(1, "b", quiet_rate, allowance=4096)
    served = simulate(quiet + arrivals(2, "a", 20 * quiet_rate))
    assert all(r.started is not None for r in quiet)
    assert p50_latency(served, "b") <= 2.0 * alone
    b_waits = [r.started - r.arrived for r in quiet if r.started is not None]
    assert statistics.median(b_waits) < MEAN_COST / TOKENS_PER_SLOT_S


def test_charging_the_allowance_instead_starves_the_team_without_max_tokens() -> None:
    quiet_rate = 0.2 * CAPACITY_RPS
    quiet = arrivals(1, "b", quiet_rate, allowance=4096)
    simulate(quiet + arrivals(2, "a", 20 * quiet_rate), charge_allowance=True)
    assert sum(r.started is None for r in quiet) > len(quiet) / 3  # shed or expired


@pytest.mark.parametrize("weight_a", [1.0, 3.0])
def test_backlogged_teams_get_tokens_in_proportion_to_their_weights(weight_a: float) -> None:
    b_rate = 0.6 * CAPACITY_RPS  # more than b's share under either weighting
    requests = arrivals(3, "b", b_rate) + arrivals(4, "a", 20 * b_rate)
    served = simulate(requests, weights={"a": weight_a, "b": 1.0})
    expected = 1.0 / (weight_a + 1.0)
    assert token_share(served, "b") == pytest.approx(expected, rel=0.10)

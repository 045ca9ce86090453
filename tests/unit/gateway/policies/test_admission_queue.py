"""The asyncio capacity gate on a stepping clock: go, fair order, time-outs, full, cancel."""

from __future__ import annotations

import asyncio

import pytest

from corral.gateway.policies.admission_queue import (
    MAX_RETRY_AFTER_S,
    Admission,
    AdmissionOutcome,
    AdmissionQueue,
    retry_after_s,
)
from corral.gateway.policies.fair_queue import Served, TokenDemand


class SteppingClock:
    """Time moves only on ``advance``; ``sleep`` waits until then (no real time passes)."""

    def __init__(self) -> None:
        self._mono = 0.0
        self._sleepers: list[tuple[float, asyncio.Future[None]]] = []

    def now(self) -> float:
        return 1_700_000_000.0 + self._mono

    def monotonic(self) -> float:
        return self._mono

    async def sleep(self, seconds: float) -> None:
        wake: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._sleepers.append((self._mono + seconds, wake))
        await wake

    async def advance(self, seconds: float) -> None:
        await settle()  # sleepers started before the step count from before it
        self._mono += seconds
        for due, wake in self._sleepers:
            if due <= self._mono and not wake.done():
                wake.set_result(None)
        await settle()


async def settle() -> None:
    """Let every ready task run until it blocks again."""
    for _ in range(10):
        await asyncio.sleep(0)


def d(allowance: int) -> TokenDemand:
    return TokenDemand(0, allowance)


def gate(
    capacity: int = 1, *, max_queued: int = 256, max_wait_s: float = 30.0
) -> tuple[AdmissionQueue, SteppingClock]:
    clock = SteppingClock()
    queue = AdmissionQueue(capacity, clock=clock, max_queued=max_queued, max_wait_s=max_wait_s)
    return queue, clock


async def go(queue: AdmissionQueue, team: str, allowance: int = 100) -> int:
    admission = await queue.acquire(team, d(allowance))
    assert admission.admitted
    assert admission.lease is not None
    return admission.lease


async def test_free_capacity_goes_at_once() -> None:
    queue, _ = gate(capacity=2)
    first = await queue.acquire("a", d(100))
    assert (first.outcome, first.waited_s, first.lease is not None) == (
        AdmissionOutcome.GO,
        0,
        True,
    )
    assert (await queue.acquire("b", d(100))).admitted
    assert queue.in_flight == 2


async def test_a_saturated_model_queues_until_a_slot_frees() -> None:
    queue, clock = gate(capacity=1)
    lease = await go(queue, "a")
    waiting = asyncio.create_task(queue.acquire("b", d(100)))
    await settle()
    assert (queue.queued, waiting.done()) == (1, False)
    await clock.advance(2.5)
    queue.release(lease, Served(100))
    admission = await waiting
    assert (admission.outcome, admission.waited_s) == (AdmissionOutcome.GO, 2.5)
    assert admission.lease not in (None, lease)
    assert (queue.in_flight, queue.queued) == (1, 0)


async def test_waiters_go_in_fair_order_across_teams() -> None:
    queue, _ = gate(capacity=1)
    holding = [await go(queue, "holder", 1)]
    order: list[str] = []

    async def request(name: str, team: str) -> None:
        holding.append(await go(queue, team))
        order.append(name)

    tasks = [asyncio.create_task(request(f"a{i}", "a")) for i in range(3)]
    await settle()
    tasks.append(asyncio.create_task(request("b0", "b")))
    await settle()
    for _ in range(4):
        queue.release(holding.pop(0), Served(100))
        await settle()
    await asyncio.gather(*tasks)
    assert order == ["a0", "b0", "a1", "a2"]


async def test_order_follows_tokens_served_not_tokens_asked_for() -> None:
    queue, _ = gate(capacity=1)
    holding = [await go(queue, "holder", 1)]
    order: list[str] = []

    async def request(name: str, team: str, allowance: int) -> None:
        holding.append(await go(queue, team, allowance))
        order.append(name)

    # "b" leaves max_tokens unset (4096) and "a" asks for 20; each is served 20.
    tasks = [asyncio.create_task(request(f"a{i}", "a", 20)) for i in range(4)]
    tasks += [asyncio.create_task(request(f"b{i}", "b", 4096)) for i in range(2)]
    await settle()
    for _ in range(6):
        queue.release(holding.pop(0), Served(20, 0))
        await settle()
    await asyncio.gather(*tasks)
    assert order == ["a0", "b0", "a1", "b1", "a2", "a3"]


async def test_tokens_streamed_count_before_the_request_ends() -> None:
    queue, _ = gate(capacity=2)
    long_answer = await go(queue, "a", 10)
    short_answer = await go(queue, "b", 10)
    a_next = asyncio.create_task(queue.acquire("a", d(10)))
    b_next = asyncio.create_task(queue.acquire("b", d(10)))
    await settle()
    queue.progress(long_answer, 500)  # a's answer is still streaming, far past its reservation
    queue.release(short_answer, Served(10, 0))
    await settle()
    assert (b_next.done(), a_next.done()) == (True, False)  # else a: it was served longer ago
    a_next.cancel()


async def test_a_wait_past_the_cap_times_out_and_leaves_the_queue() -> None:
    queue, clock = gate(capacity=1, max_wait_s=10.0)
    await go(queue, "a")
    waiting = asyncio.create_task(queue.acquire("b", d(100)))
    await clock.advance(9.9)
    assert not waiting.done()
    await clock.advance(0.1)
    assert await waiting == Admission(AdmissionOutcome.TIMED_OUT, 10.0, retry_after_s=10)
    assert (queue.queued, queue.in_flight) == (0, 1)


async def test_retry_after_follows_the_queue_once_service_times_are_known() -> None:
    queue, clock = gate(capacity=2, max_wait_s=30.0)
    for _ in range(2):
        lease = await go(queue, "a")
        await clock.advance(4.0)
        queue.release(lease, Served(10))
    for _ in range(2):
        await go(queue, "a")
    waiters = [asyncio.create_task(queue.acquire("a", d(10))) for _ in range(3)]
    await settle()
    # three of a's ahead, two slots each freeing every 4 s: (3 + 1) × 4 / 2
    assert queue.retry_after_s("a") == 8
    assert queue.retry_after_s("b") == 4  # one of a's turns, then b's: (1 + 1) × 4 / 2
    await clock.advance(30.0)
    refusals = await asyncio.gather(*waiters)
    assert {r.outcome for r in refusals} == {AdmissionOutcome.TIMED_OUT}
    assert sorted(r.retry_after_s for r in refusals) == [2, 4, 6]  # each sees those still queued


def test_retry_after_is_bounded_and_falls_back_when_nothing_is_known() -> None:
    assert retry_after_s(0, 4, 0.1, fallback=30) == 1
    assert retry_after_s(7, 4, 2.0, fallback=30) == 4
    assert retry_after_s(10_000, 4, 2.0, fallback=30) == MAX_RETRY_AFTER_S
    assert retry_after_s(3, 0, 2.0, fallback=30) == 30
    assert retry_after_s(3, 4, None, fallback=30) == 30


async def test_no_wait_allowed_times_out_at_once() -> None:
    queue, _ = gate(capacity=0, max_wait_s=0.0)
    assert (await queue.acquire("a", d(1))).outcome is AdmissionOutcome.TIMED_OUT


async def test_a_full_queue_refuses_the_heaviest_team_and_makes_room_for_others() -> None:
    queue, _ = gate(capacity=1, max_queued=1, max_wait_s=30.0)
    lease = await go(queue, "a")
    first = asyncio.create_task(queue.acquire("a", d(100)))
    await settle()
    refused = await queue.acquire("a", d(100))
    assert refused == Admission(AdmissionOutcome.QUEUE_FULL, retry_after_s=30)
    second = asyncio.create_task(queue.acquire("b", d(100)))
    await settle()
    assert (await first).outcome is AdmissionOutcome.QUEUE_FULL  # pushed out for b
    queue.release(lease, Served(100))
    assert (await second).admitted


async def test_a_caller_that_goes_away_leaves_the_queue() -> None:
    queue, _ = gate(capacity=1)
    lease = await go(queue, "a")
    waiting = asyncio.create_task(queue.acquire("b", d(100)))
    await settle()
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert queue.queued == 0
    queue.release(lease, Served(100))
    assert queue.in_flight == 0


async def test_a_slot_granted_to_a_caller_that_went_away_is_handed_back() -> None:
    queue, _ = gate(capacity=1)
    lease = await go(queue, "a")
    waiting = asyncio.create_task(queue.acquire("b", d(100)))
    await settle()
    queue.release(lease, Served(100))  # the slot passes to the waiter ...
    waiting.cancel()  # ... which is cancelled before it resumes
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert (queue.in_flight, queue.queued) == (0, 0)


async def test_raising_capacity_lets_waiters_go() -> None:
    queue, _ = gate(capacity=0)
    waiters = [asyncio.create_task(queue.acquire("a", d(10))) for _ in range(3)]
    await settle()
    queue.set_capacity(2)
    await settle()
    assert [w.done() for w in waiters] == [True, True, False]
    assert (queue.capacity, queue.in_flight, queue.queued) == (2, 2, 1)
    queue.set_capacity(3)
    assert all(a.admitted for a in await asyncio.gather(*waiters))


async def test_release_without_go_is_a_bug() -> None:
    queue, _ = gate(capacity=1)
    lease = await go(queue, "a")
    queue.release(lease)
    with pytest.raises(RuntimeError, match="release"):
        queue.release(lease)


def test_negative_capacity_is_refused() -> None:
    with pytest.raises(ValueError, match="capacity"):
        gate(capacity=-1)

"""The asyncio capacity gate on a stepping clock: go, fair order, time-outs, full, cancel."""

from __future__ import annotations

import asyncio

import pytest

from corral.gateway.policies.admission_queue import Admission, AdmissionOutcome, AdmissionQueue


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


def gate(
    capacity: int = 1, *, max_queued: int = 256, max_wait_s: float = 30.0
) -> tuple[AdmissionQueue, SteppingClock]:
    clock = SteppingClock()
    queue = AdmissionQueue(capacity, clock=clock, max_queued=max_queued, max_wait_s=max_wait_s)
    return queue, clock


async def test_free_capacity_goes_at_once() -> None:
    queue, _ = gate(capacity=2)
    assert await queue.acquire("a", 100) == Admission(AdmissionOutcome.GO)
    assert (await queue.acquire("b", 100)).admitted
    assert queue.in_flight == 2


async def test_a_saturated_model_queues_until_a_slot_frees() -> None:
    queue, clock = gate(capacity=1)
    await queue.acquire("a", 100)
    waiting = asyncio.create_task(queue.acquire("b", 100))
    await settle()
    assert (queue.queued, waiting.done()) == (1, False)
    await clock.advance(2.5)
    queue.release()
    admission = await waiting
    assert admission == Admission(AdmissionOutcome.GO, waited_s=2.5)
    assert (queue.in_flight, queue.queued) == (1, 0)


async def test_waiters_go_in_fair_order_across_teams() -> None:
    queue, _ = gate(capacity=1)
    await queue.acquire("holder", 1)
    order: list[str] = []

    async def request(name: str, team: str) -> None:
        assert (await queue.acquire(team, 100)).admitted
        order.append(name)

    tasks = [asyncio.create_task(request(f"a{i}", "a")) for i in range(3)]
    await settle()
    tasks.append(asyncio.create_task(request("b0", "b")))
    await settle()
    for _ in range(4):
        queue.release()
        await settle()
    await asyncio.gather(*tasks)
    assert order == ["a0", "b0", "a1", "a2"]


async def test_a_wait_past_the_cap_times_out_and_leaves_the_queue() -> None:
    queue, clock = gate(capacity=1, max_wait_s=10.0)
    await queue.acquire("a", 100)
    waiting = asyncio.create_task(queue.acquire("b", 100))
    await clock.advance(9.9)
    assert not waiting.done()
    await clock.advance(0.1)
    assert await waiting == Admission(AdmissionOutcome.TIMED_OUT, 10.0, retry_after_s=10)
    assert (queue.queued, queue.in_flight) == (0, 1)


async def test_no_wait_allowed_times_out_at_once() -> None:
    queue, _ = gate(capacity=0, max_wait_s=0.0)
    assert (await queue.acquire("a", 1)).outcome is AdmissionOutcome.TIMED_OUT


async def test_a_full_queue_refuses_the_heaviest_team_and_makes_room_for_others() -> None:
    queue, _ = gate(capacity=1, max_queued=1, max_wait_s=30.0)
    await queue.acquire("a", 100)
    first = asyncio.create_task(queue.acquire("a", 100))
    await settle()
    refused = await queue.acquire("a", 100)
    assert refused == Admission(AdmissionOutcome.QUEUE_FULL, retry_after_s=30)
    second = asyncio.create_task(queue.acquire("b", 100))
    await settle()
    assert (await first).outcome is AdmissionOutcome.QUEUE_FULL  # pushed out for b
    queue.release()
    assert (await second).admitted


async def test_a_caller_that_goes_away_leaves_the_queue() -> None:
    queue, _ = gate(capacity=1)
    await queue.acquire("a", 100)
    waiting = asyncio.create_task(queue.acquire("b", 100))
    await settle()
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert queue.queued == 0
    queue.release()
    assert queue.in_flight == 0


async def test_a_slot_granted_to_a_caller_that_went_away_is_handed_back() -> None:
    queue, _ = gate(capacity=1)
    await queue.acquire("a", 100)
    waiting = asyncio.create_task(queue.acquire("b", 100))
    await settle()
    queue.release()  # the slot passes to the waiter ...
    waiting.cancel()  # ... which is cancelled before it resumes
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert (queue.in_flight, queue.queued) == (0, 0)


async def test_raising_capacity_lets_waiters_go() -> None:
    queue, _ = gate(capacity=0)
    waiters = [asyncio.create_task(queue.acquire("a", 10)) for _ in range(3)]
    await settle()
    queue.set_capacity(2)
    await settle()
    assert [w.done() for w in waiters] == [True, True, False]
    assert (queue.capacity, queue.in_flight, queue.queued) == (2, 2, 1)
    queue.set_capacity(3)
    assert all(a.admitted for a in await asyncio.gather(*waiters))


async def test_release_without_go_is_a_bug() -> None:
    queue, _ = gate(capacity=1)
    with pytest.raises(RuntimeError, match="release"):
        queue.release()


def test_negative_capacity_is_refused() -> None:
    with pytest.raises(ValueError, match="capacity"):
        gate(capacity=-1)

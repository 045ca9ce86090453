"""The cold-start gate: one wake-up per model, bounded wait and waiters, a clean 503 after."""

from __future__ import annotations

import asyncio

from corral.clock import FakeClock
from corral.gateway.cold_start import ColdStartGate
from corral.settings import ColdStartSettings


class ScriptedProbe:
    """A ReadinessProbe that answers when the test says so."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.answer: asyncio.Future[bool] = asyncio.get_running_loop().create_future()

    async def ready(self, model: str, timeout_s: float) -> bool:
        self.calls.append(model)
        return await self.answer


SETTINGS = ColdStartSettings(max_wait_s=30, max_waiting=2, warm_for_s=5, retry_after_s=7)


async def test_waiters_share_one_wake_up_and_pass_without_checks_while_warm() -> None:
    clock, probe = FakeClock(), ScriptedProbe()
    gate = ColdStartGate(probe, clock, SETTINGS)
    deadline = 10_000.0  # beyond max_wait_s: the gate's own bound applies
    first = asyncio.create_task(gate.ensure_ready("m", deadline))
    second = asyncio.create_task(gate.ensure_ready("m", deadline))
    await asyncio.sleep(0)
    probe.answer.set_result(True)
    assert await first
    assert await second
    assert probe.calls == ["m"]
    clock.advance(4.9)
    assert await gate.ensure_ready("m", deadline)
    assert probe.calls == ["m"]
    await gate.close()


async def test_a_cold_start_past_the_deadline_is_refused_with_retry_after() -> None:
    clock, probe = FakeClock(), ScriptedProbe()
    gate = ColdStartGate(probe, clock, SETTINGS)
    # The fake clock's sleep jumps straight to the deadline: the probe never answered.
    assert not await gate.ensure_ready("m", clock.monotonic() + 3)
    refusal = gate.refusal("m")
    assert (refusal.status, refusal.code, refusal.retry_after) == (503, "model_cold_start", 7)
    assert "'m' is starting" in refusal.message
    await gate.close()


async def test_more_waiters_than_allowed_are_refused_at_once() -> None:
    clock, probe = FakeClock(), ScriptedProbe()
    gate = ColdStartGate(probe, clock, SETTINGS)
    held = [asyncio.create_task(gate.ensure_ready("m", 10_000.0)) for _ in range(2)]
    await asyncio.sleep(0)
    assert not await gate.ensure_ready("m", 10_000.0)
    probe.answer.set_result(True)
    assert await asyncio.gather(*held) == [True, True]
    await gate.close()


async def test_a_probe_that_gives_up_is_retried_until_the_deadline() -> None:
    clock = FakeClock()
    answers = [False, False, True]

    class FlakyProbe:
        async def ready(self, model: str, timeout_s: float) -> bool:
            return answers.pop(0)

    gate = ColdStartGate(FlakyProbe(), clock, SETTINGS)
    assert await gate.ensure_ready("m", clock.monotonic() + 20)
    assert answers == []
    await gate.close()

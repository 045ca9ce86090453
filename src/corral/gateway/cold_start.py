"""Holding requests for a model scaled to zero: wake it once, wait bounded, or refuse with 503."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import Protocol

from corral.clock import Clock
from corral.errors import Overloaded
from corral.settings import ColdStartSettings


class ColdStart(Protocol):
    """The gateway's hook: call before routing a request for ``model``."""

    async def ensure_ready(self, model: str, deadline: float) -> bool:
        """True once a replica can take the request; False at ``deadline`` (clock.monotonic)
        or when too many requests already wait for this model."""
        ...

    def refusal(self, model: str) -> Overloaded:
        """The error to answer when ``ensure_ready`` said False (503 with Retry-After)."""
        ...


class ReadinessProbe(Protocol):
    """Whether a model has a replica, waiting up to ``timeout_s`` (and waking it meanwhile)."""

    async def ready(self, model: str, timeout_s: float) -> bool: ...


@dataclass
class _ModelState:
    waiting: int = 0
    warm_until: float = float("-inf")
    wake: asyncio.Task[bool] | None = field(default=None, repr=False)


class ColdStartGate:
    """ColdStart over a ReadinessProbe: one wake-up per model shared by all its waiters."""

    def __init__(self, probe: ReadinessProbe, clock: Clock, settings: ColdStartSettings) -> None:
        self._probe = probe
        self._clock = clock
        self._settings = settings
        self._models: dict[str, _ModelState] = {}

    async def ensure_ready(self, model: str, deadline: float) -> bool:
        state = self._models.setdefault(model, _ModelState())
        now = self._clock.monotonic()
        if now < state.warm_until:
            return True
        if state.waiting >= self._settings.max_waiting:
            return False
        deadline = min(deadline, now + self._settings.max_wait_s)
        state.waiting += 1
        try:
            return await self._wait(model, state, deadline)
        finally:
            state.waiting -= 1

    async def _wait(self, model: str, state: _ModelState, deadline: float) -> bool:
        while (remaining := deadline - self._clock.monotonic()) > 0:
            if state.wake is None or state.wake.done():
                state.wake = asyncio.create_task(
                    self._probe.ready(model, self._settings.max_wait_s)
                )
            if not await self._first(state.wake, remaining):
                return False
            if state.wake.result():
                state.warm_until = self._clock.monotonic() + self._settings.warm_for_s
                return True
            # The probe gave up before our deadline: pause, then wake the model again.
            await self._clock.sleep(min(0.5, max(0.0, deadline - self._clock.monotonic())))
        return False

    async def _first(self, wake: asyncio.Task[bool], remaining: float) -> bool:
        """Wait for ``wake`` (shared, never cancelled here) or ``remaining`` clock seconds."""
        await asyncio.sleep(0)  # a probe that answers at once wins over the timer
        if wake.done():
            return True
        timer = asyncio.create_task(self._clock.sleep(remaining))
        try:
            await asyncio.wait({wake, timer}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            timer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await timer
        return wake.done()

    def refusal(self, model: str) -> Overloaded:
        """The error to answer when ``ensure_ready`` said False (503 with Retry-After)."""
        return Overloaded(
            f"The model {model!r} is starting (scaled to zero) and was not ready in "
            f"{self._settings.max_wait_s:g} s; retry shortly.",
            code="model_cold_start",
            retry_after=self._settings.retry_after_s,
        )

    async def close(self) -> None:
        """Cancel wake-ups still running."""
        for state in self._models.values():
            if state.wake is not None and not state.wake.done():
                state.wake.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await state.wake

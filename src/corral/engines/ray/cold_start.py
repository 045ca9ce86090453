"""Holding requests for a model scaled to zero: wake it once, wait bounded, or refuse with 503."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

import aiohttp

from corral.clock import Clock
from corral.errors import Overloaded


class ColdStart(Protocol):
    """The gateway's hook: call before routing a request for ``model``."""

    async def ensure_ready(self, model: str, deadline: float) -> bool:
        """True once a replica can take the request; False at ``deadline`` (clock.monotonic)
        or when too many requests already wait for this model."""
        ...


class ReadinessProbe(Protocol):
    """Whether a model has a replica, waiting up to ``timeout_s`` (and waking it meanwhile)."""

    async def ready(self, model: str, timeout_s: float) -> bool: ...


@dataclass(frozen=True)
class ColdStartSettings:
    """How long and how many requests the gateway holds for a cold model."""

    max_wait_s: float = 120.0
    """Longest a request waits for the first replica before a 503."""
    max_waiting: int = 256
    """Requests held per model at once; more get a 503 at once."""
    warm_for_s: float = 5.0
    """After a successful check, requests pass without one for this long."""
    retry_after_s: float = 10.0
    """Retry-After on the 503."""


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


class HealthProbe:
    """ReadinessProbe through the Serve proxy: ``GET {base}/health`` answers once a replica runs.

    While a deployment has no replica, the proxy holds the request and Ray starts one (its
    cold-start path), so the probe itself is the wake-up.
    """

    def __init__(self, base_urls: Mapping[str, str], session: aiohttp.ClientSession) -> None:
        self._bases = base_urls
        self._session = session

    async def ready(self, model: str, timeout_s: float) -> bool:
        base = self._bases.get(model)
        if base is None:
            return True  # not a Ray-served model: nothing to wake
        url = base.removesuffix("/").removesuffix("/v1") + "/health"
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout_s
        while (left := end - loop.time()) > 0:
            try:
                timeout = aiohttp.ClientTimeout(total=left)
                async with self._session.get(url, timeout=timeout) as reply:
                    if reply.status == 200:
                        return True
            except (aiohttp.ClientError, TimeoutError):
                pass
            await asyncio.sleep(min(0.5, max(0.0, end - loop.time())))
        return False

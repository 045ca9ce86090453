"""Graceful drain: serving, then draining (not ready), refusing new work, and closed."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from enum import StrEnum


class DrainPhase(StrEnum):
    """Where a gateway process is in its shutdown."""

    SERVING = "serving"
    """Ready and accepting."""
    DRAINING = "draining"
    """Not ready (load balancers stop sending) but still accepting during the grace period."""
    REFUSING = "refusing"
    """New requests refused; open streams may finish until the stream cap."""
    CLOSED = "closed"
    """Past the stream cap, or closed: remaining streams are cut, usage flushed, exit."""


@dataclass(frozen=True, slots=True)
class DrainState:
    """An immutable drain state; ``begin`` and ``close`` return the next state.

    SIGTERM at ``t`` → ``begin(t)``: ``/readyz`` fails at once; new requests are accepted until
    ``t + grace_s`` (while load balancers notice) and refused after; open streams may run until
    ``t + grace_s + stream_cap_s``. The process may exit once no stream is open after the grace.
    """

    grace_s: float = 5.0
    stream_cap_s: float = 60.0
    draining_since: float | None = None
    closed: bool = False

    def __post_init__(self) -> None:
        if self.grace_s < 0 or self.stream_cap_s < 0:
            raise ValueError("grace_s and stream_cap_s must be zero or more")

    def begin(self, now: float) -> DrainState:
        """Start draining at ``now``; a second signal keeps the first start."""
        if self.draining_since is not None:
            return self
        return dataclasses.replace(self, draining_since=now)

    def close(self) -> DrainState:
        """Stop serving now (a second SIGTERM or the exit path)."""
        return dataclasses.replace(self, closed=True)

    def phase(self, now: float) -> DrainPhase:
        """The phase at ``now``."""
        if self.closed:
            return DrainPhase.CLOSED
        if self.draining_since is None:
            return DrainPhase.SERVING
        elapsed = now - self.draining_since
        if elapsed < self.grace_s:
            return DrainPhase.DRAINING
        if elapsed < self.grace_s + self.stream_cap_s:
            return DrainPhase.REFUSING
        return DrainPhase.CLOSED

    def ready(self) -> bool:
        """What ``/readyz`` reports: False from the moment draining begins."""
        return self.draining_since is None and not self.closed

    def accepting_new(self, now: float) -> bool:
        """True while new requests are still taken."""
        return self.phase(now) in (DrainPhase.SERVING, DrainPhase.DRAINING)

    def may_exit(self, now: float, open_streams: int) -> bool:
        """True when the process can flush and exit: refusing and idle, or past the cap."""
        phase = self.phase(now)
        return phase is DrainPhase.CLOSED or (phase is DrainPhase.REFUSING and open_streams == 0)

    def stream_deadline(self) -> float | None:
        """When open streams are cut (None while serving)."""
        if self.draining_since is None:
            return None
        return self.draining_since + self.grace_s + self.stream_cap_s

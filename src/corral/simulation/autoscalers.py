"""The autoscaler port the simulator drives, and the load samples each autoscaler observes."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class LoadSample:
    """What the deployment carries at one instant, as replicas and handles report it."""

    at_s: float
    ongoing_at_replicas: int
    """Running plus queued inside the replicas (vLLM's running + waiting)."""
    queued_before_replicas: int
    """Held at the router/gateway because every replica was full or none was ready."""
    tokens_in_flight: int
    ready_replicas: int

    @property
    def total_requests(self) -> int:
        """Ray Serve's ``total_num_requests``: ongoing at replicas plus queued at handles."""
        return self.ongoing_at_replicas + self.queued_before_replicas


class Autoscaler(Protocol):
    """A runtime's autoscaler as the simulator drives it, at the runtime's own cadence."""

    name: str
    interval_s: float
    """How often the runtime evaluates its policy."""
    sample_interval_s: float
    """How often the runtime records the load it reads."""

    def observe(self, sample: LoadSample) -> None:
        """Record one load sample (the simulator calls this every ``sample_interval_s``)."""
        ...

    def decide(self, now: float, running: int, target: int) -> int:
        """The new target replica count, given ``running`` ready replicas and the last target."""
        ...


class SampleWindow:
    """Samples kept for a look-back window, with the delivery delay of a push interval."""

    def __init__(self, look_back_s: float, push_interval_s: float) -> None:
        self.look_back_s = look_back_s
        self.push_interval_s = push_interval_s
        self._samples: deque[LoadSample] = deque()

    def add(self, sample: LoadSample) -> None:
        self._samples.append(sample)
        horizon = sample.at_s - self.look_back_s - self.push_interval_s
        while self._samples and self._samples[0].at_s < horizon:
            self._samples.popleft()

    def visible(self, now: float) -> list[LoadSample]:
        """Samples the controller has received by ``now`` that lie in the look-back window.

        Reporters push every ``push_interval_s``, so the newest samples arrive late."""
        if self.push_interval_s > 0:
            pushed_until = (now // self.push_interval_s) * self.push_interval_s
        else:
            pushed_until = now
        start = now - self.look_back_s
        return [s for s in self._samples if start <= s.at_s <= pushed_until]

"""The scheduler's statistics as plain numbers: the generation loop adds, a scrape reads.

The loop runs once per generated token, so nothing here takes a lock or builds a label: counters
are ints, a histogram is a list of bucket counts, and the Prometheus collector
(``corral.engines.local.metrics``) turns them into metric families only when scraped.
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass, field

# A queue wait spans milliseconds (a free slot) to minutes (a long queue on a busy CPU).
QUEUE_BOUNDS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
# One forward pass on a CPU: a decode step of a small model takes milliseconds, a prefill chunk
# of a long prompt up to seconds.
STEP_BOUNDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)


@dataclass(slots=True)
class Durations:
    """A histogram kept as bucket counts; a value equal to a bound counts in that bound's bucket
    (Prometheus's ``le``), and the last count is for values above every bound."""

    bounds: tuple[float, ...]
    counts: list[int] = field(init=False)
    total: float = 0.0

    def __post_init__(self) -> None:
        self.counts = [0] * (len(self.bounds) + 1)

    def observe(self, seconds: float) -> None:
        self.counts[bisect_left(self.bounds, seconds)] += 1
        self.total += seconds

    def cumulative(self) -> list[int]:
        """Counts at or below each bound, then the overall count (the ``+Inf`` bucket)."""
        running, out = 0, []
        for count in list(self.counts):  # a copy: the loop may add while a scrape reads
            running += count
            out.append(running)
        return out


@dataclass(slots=True)
class SchedulerStats:
    """Running totals since the engine started."""

    prompt_tokens: int = 0
    """Prompt tokens prefilled into a slot."""
    generated_tokens: int = 0
    """Tokens sampled, including any that ended a sequence (end-of-sequence, stop text)."""
    rejected: int = 0
    """Sequences refused because the queue was full (answered 503)."""
    queue_time: Durations = field(default_factory=lambda: Durations(QUEUE_BOUNDS))
    """From ``submit`` to a slot."""
    prefill_step: Durations = field(default_factory=lambda: Durations(STEP_BOUNDS))
    """One prefill chunk's forward pass."""
    decode_step: Durations = field(default_factory=lambda: Durations(STEP_BOUNDS))
    """One batched decode forward pass (one token for every running sequence)."""


@dataclass(frozen=True, slots=True)
class SchedulerLoad:
    """What the scheduler holds at one moment."""

    waiting: int
    """Sequences queued for a slot (a request asking for n choices queues n)."""
    decoding: int
    """Sequences in the decode batch."""
    slots_used: int
    """Slots held: the decode batch plus a prompt being prefilled."""
    slots: int
    """Slots the decoder has (its maximum batch)."""

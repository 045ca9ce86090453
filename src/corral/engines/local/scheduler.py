"""Continuous batching: admits sequences into decode slots, steps them together, streams their text.

One generation thread calls ``step`` in a loop. Each step prefills at most one chunk of one new
prompt, then decodes one token for every running sequence in a single batched forward pass.
Running sequences always occupy slots ``0..n-1`` so the decoder can treat them as one batch; a
finished or abandoned sequence frees its slot at the end of the step it was noticed in.
The scheduler keeps plain-number statistics (``stats``, ``load``) that its metrics read at scrape
time, so counting costs the loop a few integer additions per step.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import numpy.typing as npt

from corral.clock import Clock, SystemClock
from corral.engines.local.sampling import SamplingParams, make_rng, sample
from corral.engines.local.stats import SchedulerLoad, SchedulerStats
from corral.engines.local.text import StopMatcher, TextStream
from corral.errors import Overloaded

Logits = npt.NDArray[np.float32]


class Decoder(Protocol):
    """A causal language model with a key-value cache per slot."""

    max_batch: int

    def prefill(self, slot: int, tokens: Sequence[int], cached: int) -> Logits:
        """Feed ``tokens`` after ``cached`` tokens already in ``slot``; logits of the last one."""
        ...

    def decode(self, tokens: Sequence[int], cached: Sequence[int]) -> Logits:
        """One token for each of slots ``0..len(tokens)-1``; logits shaped [batch, vocab]."""
        ...

    def move(self, source: int, target: int, length: int) -> None:
        """Copy the first ``length`` cached positions of slot ``source`` into slot ``target``."""
        ...


@dataclass(frozen=True)
class Delta:
    """What the scheduler produced for one sequence: new text, and how it ended if it did."""

    index: int
    text: str
    finish_reason: str | None = None  # "stop", "length", or "error"
    prompt_tokens: int = 0
    completion_tokens: int = 0


Sink = Callable[[Delta], None]


@dataclass(eq=False)
class Generation:
    """One sequence being generated; ``index`` is its choice number within its request."""

    prompt: list[int]
    params: SamplingParams
    sink: Sink
    stream: TextStream
    index: int = 0
    slot: int = -1
    cached: int = 0
    generated: int = 0
    next_token: int = -1
    cancelled: bool = False
    finished: bool = False
    queued_at: float = 0.0
    rng: np.random.Generator = field(init=False)
    stops: StopMatcher = field(init=False)

    def __post_init__(self) -> None:
        self.rng = make_rng(self.params.seed, self.index)
        self.stops = StopMatcher(self.params.stop)

    @property
    def prefilled(self) -> bool:
        return self.cached >= len(self.prompt)


class Scheduler:
    """Owns the decode slots; ``submit`` and ``cancel`` are safe from any thread."""

    def __init__(
        self,
        decoder: Decoder,
        *,
        eos_ids: frozenset[int],
        max_queue: int,
        prefill_chunk: int = 256,
        retry_after: float = 1.0,
        clock: Clock | None = None,
    ) -> None:
        self._decoder = decoder
        self._eos = eos_ids
        self._max_queue = max_queue
        self._chunk = prefill_chunk
        self._retry_after = retry_after
        self._waiting: deque[Generation] = deque()
        self._running: list[Generation] = []  # prefilled, in slot order
        self._filling: Generation | None = None  # the one prompt being prefilled, in the next slot
        self._work = threading.Condition()
        self._now = (clock or SystemClock()).monotonic
        self.stats = SchedulerStats()

    @property
    def running(self) -> int:
        """Sequences holding a slot (decoding or being prefilled)."""
        return len(self._running) + (self._filling is not None)

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    def load(self) -> SchedulerLoad:
        """What the scheduler holds now (read from any thread; each number is current)."""
        return SchedulerLoad(
            waiting=len(self._waiting),
            decoding=len(self._running),
            slots_used=self.running,
            slots=self._decoder.max_batch,
        )

    def submit(self, sequences: list[Generation]) -> None:
        """Queue ``sequences`` together; Overloaded (503) when the queue has no room for them."""
        now = self._now()
        with self._work:
            if len(self._waiting) + len(sequences) > self._max_queue:
                self.stats.rejected += len(sequences)
                raise Overloaded(
                    f"The local engine is busy: {len(self._waiting)} requests are already "
                    "waiting. Retry shortly.",
                    retry_after=self._retry_after,
                )
            for seq in sequences:
                seq.queued_at = now
            self._waiting.extend(sequences)
            self._work.notify()

    def cancel(self, sequences: list[Generation]) -> None:
        """Stop generating ``sequences`` (their client left); their slots free on the next step."""
        with self._work:
            for seq in sequences:
                seq.cancelled = True
            self._work.notify()

    def wait_for_work(self, timeout: float) -> None:
        """Block the generation thread until something is queued (or ``timeout`` passes)."""
        with self._work:
            if not self._waiting and not self.running:
                self._work.wait(timeout)

    def wake(self) -> None:
        with self._work:
            self._work.notify_all()

    def step(self) -> bool:
        """One scheduling round; False when there was nothing to do."""
        self._retire()
        self._admit()
        worked = False
        if self._filling is not None:
            self._prefill(self._filling)
            self._retire()
            worked = True
        if self._running:
            self._decode(self._running)
            self._retire()
            worked = True
        return worked

    def fail_all(self, message: str) -> None:
        """End every sequence with an error (the decoder broke); the engine keeps serving."""
        with self._work:
            doomed = [*self._running, *self._waiting]
            if self._filling is not None:
                doomed.append(self._filling)
            self._running, self._filling = [], None
            self._waiting.clear()
        for seq in doomed:
            seq.finished = True
            seq.sink(Delta(seq.index, message, "error", len(seq.prompt), seq.generated))

    def _admit(self) -> None:
        with self._work:
            if any(s.cancelled for s in self._waiting):
                self._waiting = deque(s for s in self._waiting if not s.cancelled)
            if self._filling is not None or not self._waiting:
                return
            if len(self._running) >= self._decoder.max_batch:
                return
            seq = self._waiting.popleft()
        self.stats.queue_time.observe(self._now() - seq.queued_at)
        seq.slot = len(self._running)
        self._filling = seq

    def _prefill(self, seq: Generation) -> None:
        if seq.cancelled:
            return
        chunk = seq.prompt[seq.cached : seq.cached + self._chunk]
        started = self._now()
        logits = self._decoder.prefill(seq.slot, chunk, seq.cached)
        stats = self.stats
        stats.prefill_step.observe(self._now() - started)
        stats.prompt_tokens += len(chunk)
        seq.cached += len(chunk)
        if seq.prefilled:
            self._filling = None
            self._running.append(seq)
            stats.generated_tokens += 1
            self._accept(seq, sample(logits, seq.params, seq.rng))

    def _decode(self, batch: list[Generation]) -> None:
        started = self._now()
        logits = self._decoder.decode([s.next_token for s in batch], [s.cached for s in batch])
        self.stats.decode_step.observe(self._now() - started)
        self.stats.generated_tokens += len(batch)
        for row, seq in enumerate(batch):
            seq.cached += 1
            self._accept(seq, sample(logits[row], seq.params, seq.rng))

    def _accept(self, seq: Generation, token: int) -> None:
        """Record a sampled token, stream its text, and end the sequence when it should end."""
        seq.generated += 1
        seq.next_token = token
        if token in self._eos:
            self._finish(seq, seq.stops.flush(), "stop")
            return
        text, stopped = seq.stops.feed(seq.stream.step(token))
        if stopped:
            self._finish(seq, text, "stop")
        elif seq.generated >= seq.params.max_tokens:
            self._finish(seq, text + seq.stops.flush(), "length")
        elif text:
            seq.sink(Delta(seq.index, text))

    def _finish(self, seq: Generation, text: str, reason: str) -> None:
        seq.finished = True
        seq.sink(Delta(seq.index, text, reason, len(seq.prompt), seq.generated))

    def _retire(self) -> None:
        """Free the slots of finished and cancelled sequences and close the gaps they leave."""
        if self._filling is not None and self._filling.cancelled:
            self._filling = None
        keep = [s for s in self._running if not (s.finished or s.cancelled)]
        if len(keep) == len(self._running):
            return
        # Moving downwards in slot order never overwrites a slot that is still to be moved.
        for target, seq in enumerate(keep):
            if seq.slot != target:
                self._decoder.move(seq.slot, target, seq.cached)
                seq.slot = target
        self._running = keep
        filling = self._filling
        if filling is not None and filling.slot != len(keep):
            self._decoder.move(filling.slot, len(keep), filling.cached)
            filling.slot = len(keep)

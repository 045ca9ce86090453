"""A vLLM-style replica engine: continuous batching with chunked prefill, step by step."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from corral.simulation.replica import ReplicaModel


class SimRequest:
    """One request on its way through the simulated deployment (mutable: it is a hot path)."""

    __slots__ = (
        "arrival_s",
        "decode_left",
        "dispatched_s",
        "finished_s",
        "first_token_s",
        "held",
        "index",
        "output_tokens",
        "prefill_left",
        "prompt_tokens",
        "refused",
    )

    def __init__(self, index: int, arrival_s: float, prompt_tokens: int, output_tokens: int):
        self.index = index
        self.arrival_s = arrival_s
        self.prompt_tokens = max(1, prompt_tokens)
        self.output_tokens = max(1, output_tokens)
        self.prefill_left = self.prompt_tokens
        self.decode_left = self.output_tokens
        self.first_token_s: float | None = None
        self.dispatched_s: float | None = None
        """When the gateway handed it to a replica (None while it waits in front)."""
        self.finished_s: float | None = None
        self.held = False
        """Arrived while no replica was ready: the gateway's cold-start hold applies."""
        self.refused = False

    @property
    def tokens(self) -> int:
        """Prompt plus output tokens: the KV cache it will hold at most."""
        return self.prompt_tokens + self.output_tokens

    def restart(self) -> None:
        """Lost with its replica (spot reclaim): the gateway retries it from the start."""
        self.prefill_left = self.prompt_tokens
        self.decode_left = self.output_tokens
        self.first_token_s = self.finished_s = self.dispatched_s = None


@dataclass(slots=True)
class StepResult:
    """What one engine step did: its length and the requests that finished in it."""

    duration_s: float
    finished: list[SimRequest] = field(default_factory=list)


class ReplicaEngine:
    """Admits requests FCFS while sequences and KV cache allow; each step decodes one token per
    running sequence and spends the rest of the token budget on prefill (vLLM V1's order).

    A request reserves its prompt plus output tokens of KV cache on admission, so nothing is
    preempted; a request larger than the whole cache runs alone.
    """

    def __init__(self, model: ReplicaModel) -> None:
        self.model = model
        self.waiting: deque[SimRequest] = deque()
        self.running: list[SimRequest] = []
        self.kv_used = 0
        self.finishing = 0
        """Requests done in the step under way, counted as ongoing until it ends."""
        self.tokens_in_flight = 0
        self.stepping = False

    @property
    def ongoing(self) -> int:
        """Running plus queued requests, what Ray Serve and the gateway count."""
        return len(self.waiting) + len(self.running) + self.finishing

    def submit(self, request: SimRequest) -> None:
        self.waiting.append(request)
        self.tokens_in_flight += request.tokens

    @property
    def has_work(self) -> bool:
        return bool(self.waiting or self.running)

    def step(self, now: float) -> StepResult:
        """Run one step starting at ``now``; first tokens and finishes are stamped at its end."""
        budget = self.model.max_batched_tokens
        chunks: list[int] = []
        context = 0
        decoding = False
        for request in self.running:
            if request.prefill_left:
                chunk = min(request.prefill_left, max(0, budget))
                budget -= chunk
                chunks.append(chunk)
            else:
                decoding = True
                budget -= 1
                chunks.append(0)
                context += request.prompt_tokens + request.output_tokens - request.decode_left
        self._admit(budget, chunks)
        duration = self.model.step_s(context, sum(chunks), decoding)
        return StepResult(duration, self._advance(now + duration, chunks))

    def _admit(self, budget: int, chunks: list[int]) -> None:
        capacity = self.model.kv_capacity_tokens
        while self.waiting and budget > 0 and len(self.running) < self.model.max_num_seqs:
            request = self.waiting[0]
            need = min(request.tokens, capacity)
            if self.running and self.kv_used + need > capacity:
                break
            self.waiting.popleft()
            self.running.append(request)
            self.kv_used += need
            chunk = min(request.prefill_left, budget)
            budget -= chunk
            chunks.append(chunk)

    def _advance(self, end: float, chunks: list[int]) -> list[SimRequest]:
        finished: list[SimRequest] = []
        still: list[SimRequest] = []
        for request, chunk in zip(self.running, chunks, strict=True):
            if request.prefill_left:
                request.prefill_left -= chunk
                if request.prefill_left:
                    still.append(request)
                    continue
                request.first_token_s = end
            request.decode_left -= 1
            if request.decode_left <= 0:
                request.finished_s = end
                finished.append(request)
            else:
                still.append(request)
        self.running = still
        for request in finished:
            self.kv_used -= min(request.tokens, self.model.kv_capacity_tokens)
        self.finishing = len(finished)
        return finished

    def end_step(self, finished: list[SimRequest]) -> None:
        """The step is over: its finished requests stop counting as ongoing."""
        self.finishing = 0
        for request in finished:
            self.tokens_in_flight -= request.tokens

    def evict(self) -> list[SimRequest]:
        """Everything this replica holds, taken away (its node is gone)."""
        lost = list(self.running) + list(self.waiting)
        self.running, self.waiting = [], deque()
        self.kv_used = self.tokens_in_flight = self.finishing = 0
        return lost

"""Turns validated chat and completion requests into scheduled sequences and OpenAI responses."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from corral.engines import wire
from corral.engines.local.chat_template import ChatTemplate
from corral.engines.local.parsing import GenerationRequest
from corral.engines.local.sampling import GenerationDefaults, SamplingParams
from corral.engines.local.scheduler import Delta, Generation, Scheduler
from corral.engines.local.text import TokenizerPort
from corral.errors import InvalidRequest


class GenerationFailed(Exception):
    """The model failed part-way through a request (reported to the client as a server error)."""


@dataclass
class Job:
    """One request's sequences and the queue their text arrives on."""

    request: GenerationRequest
    chat: bool
    sequences: list[Generation]
    deltas: asyncio.Queue[Delta]
    prompt_tokens: int
    ident: str
    created: int = field(default_factory=lambda: int(time.time()))


def _deliver(loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[Delta]) -> Any:
    def sink(delta: Delta) -> None:
        # Called on the generation thread; a closed loop means the server is shutting down.
        if not loop.is_closed():
            loop.call_soon_threadsafe(queue.put_nowait, delta)

    return sink


class ChatService:
    """Tokenizes, schedules and renders chat and completion requests for one model."""

    def __init__(
        self,
        scheduler: Scheduler,
        tokenizer: TokenizerPort,
        template: ChatTemplate,
        *,
        context_length: int,
        model_name: str,
        defaults: GenerationDefaults | None = None,
    ) -> None:
        self._scheduler = scheduler
        self._tokenizer = tokenizer
        self._template = template
        self._context = context_length
        self.model_name = model_name
        self._defaults = defaults or GenerationDefaults(max_tokens=context_length)

    def start(self, request: GenerationRequest, *, chat: bool) -> Job:
        """Tokenize and queue ``request``; InvalidRequest (400) or Overloaded (503) if it cannot."""
        if request.messages is not None:
            prompt = self._tokenizer.encode(self._template.render(request.messages), special=False)
        else:
            prompt = self._tokenizer.encode(request.prompt or "", special=True)
        if not prompt:
            raise InvalidRequest("The prompt is empty; send some text to continue.", param="prompt")
        max_tokens = self._budget(len(prompt), request.max_tokens)
        params = SamplingParams(
            max_tokens=max_tokens,
            temperature=(
                self._defaults.temperature if request.temperature is None else request.temperature
            ),
            top_p=self._defaults.top_p if request.top_p is None else request.top_p,
            seed=request.seed,
            stop=request.stop,
        )
        queue: asyncio.Queue[Delta] = asyncio.Queue()
        sink = _deliver(asyncio.get_running_loop(), queue)
        sequences = [
            Generation(prompt, params, sink, self._tokenizer.stream(), index=i)
            for i in range(request.n)
        ]
        prefix = "chatcmpl-" if chat else "cmpl-"
        job = Job(request, chat, sequences, queue, len(prompt), prefix + uuid.uuid4().hex)
        self._scheduler.submit(sequences)
        return job

    def cancel(self, job: Job) -> None:
        """Free the job's slots now (its client went away, or it is done)."""
        self._scheduler.cancel([s for s in job.sequences if not s.finished])

    async def complete(self, job: Job) -> dict[str, Any]:
        """The whole response body once every choice has finished."""
        texts = [""] * len(job.sequences)
        reasons = ["stop"] * len(job.sequences)
        completion = 0
        async for delta in self._deltas(job):
            texts[delta.index] += delta.text
            if delta.finish_reason is not None:
                reasons[delta.index] = delta.finish_reason
                completion += delta.completion_tokens
        make = wire.chat_completion if job.chat else wire.text_completion
        body = make(
            job.ident,
            job.created,
            self._name(job),
            texts=texts,
            finish=reasons[0],
            prompt=job.prompt_tokens,
            completion=completion,
        )
        for choice, reason in zip(body["choices"], reasons, strict=True):
            choice["finish_reason"] = reason
        return body

    async def stream(self, job: Job) -> AsyncIterator[bytes]:
        """Server-sent events: one chunk per text delta, then usage if asked for, then [DONE]."""
        model, completion = self._name(job), 0
        if job.chat:
            for seq in job.sequences:
                yield wire.sse(self._chunk(job, model, seq.index, role="assistant", content=""))
        async for delta in self._deltas(job):
            if delta.text:
                yield wire.sse(self._chunk(job, model, delta.index, content=delta.text))
            if delta.finish_reason is not None:
                completion += delta.completion_tokens
                yield wire.sse(self._chunk(job, model, delta.index, finish=delta.finish_reason))
        if job.request.include_usage:
            obj = "chat.completion.chunk" if job.chat else "text_completion"
            usage = wire.usage_chunk(
                job.ident,
                job.created,
                model,
                obj=obj,
                prompt=job.prompt_tokens,
                completion=completion,
            )
            yield wire.sse(usage)
        yield wire.DONE

    def _chunk(
        self,
        job: Job,
        model: str,
        index: int,
        *,
        role: str | None = None,
        content: str | None = None,
        finish: str | None = None,
    ) -> dict[str, Any]:
        if job.chat:
            return wire.chat_chunk(
                job.ident, job.created, model, content=content, role=role, finish_reason=finish,
                index=index,
            )  # fmt: skip
        return wire.text_chunk(
            job.ident, job.created, model, text=content or "", finish_reason=finish, index=index
        )

    async def _deltas(self, job: Job) -> AsyncIterator[Delta]:
        remaining = len(job.sequences)
        while remaining:
            delta = await job.deltas.get()
            if delta.finish_reason == "error":
                raise GenerationFailed(delta.text)
            if delta.finish_reason is not None:
                remaining -= 1
            yield delta

    def _name(self, job: Job) -> str:
        return job.request.model or self.model_name

    def _budget(self, prompt_tokens: int, max_tokens: int | None) -> int:
        room = self._context - prompt_tokens
        if room < 1:
            raise InvalidRequest(
                f"The prompt is {prompt_tokens} tokens; this model's context holds "
                f"{self._context}. Shorten the messages.",
                param="messages",
                code="context_length_exceeded",
            )
        if max_tokens is None:  # a sensible answer length, not the whole context
            return min(room, self._defaults.max_tokens)
        if max_tokens > room:
            raise InvalidRequest(
                f"max_tokens is {max_tokens}, but the prompt ({prompt_tokens} tokens) leaves "
                f"room for {room} in this model's {self._context}-token context. Lower "
                "max_tokens or shorten the prompt.",
                param="max_tokens",
                code="context_length_exceeded",
            )
        return max_tokens

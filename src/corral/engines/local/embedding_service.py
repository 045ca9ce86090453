"""Embeddings with dynamic batching: concurrent requests are encoded together on one thread."""

from __future__ import annotations

import asyncio
import base64
import queue
import threading
from dataclasses import dataclass
from typing import Any

from corral.engines import wire
from corral.engines.local.encoders import Embedder, Vectors
from corral.engines.local.parsing import EmbeddingRequest
from corral.errors import InvalidRequest, Overloaded


@dataclass
class EmbeddingStats:
    """What the service has done, as plain numbers (read by the metrics collector when scraped;
    written by the worker thread, one int at a time)."""

    texts: int = 0
    tokens: int = 0
    rejected: int = 0
    encoding: int = 0
    """Texts in the batch being encoded now (0 when idle)."""


@dataclass
class _Job:
    texts: list[str]
    future: asyncio.Future[tuple[Vectors, int]]
    loop: asyncio.AbstractEventLoop


class EmbeddingService:
    """Queues embedding requests and answers them in OpenAI's shape."""

    def __init__(
        self,
        embedder: Embedder,
        *,
        dimensions: int,
        model_name: str,
        max_queue: int,
        batch_texts: int = 64,
    ) -> None:
        self._embedder = embedder
        self._dimensions = dimensions
        self.model_name = model_name
        self._batch_texts = batch_texts
        self._jobs: queue.Queue[_Job | None] = queue.Queue(maxsize=max_queue)
        self._thread = threading.Thread(target=self._work, name="corral-embeddings", daemon=True)
        self.stats = EmbeddingStats()

    def queue_depth(self) -> int:
        """Requests waiting for the encoder."""
        return self._jobs.qsize()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._jobs.put(None)
        self._thread.join(timeout=10)

    async def answer(self, request: EmbeddingRequest) -> dict[str, Any]:
        """The response body for ``request``; Overloaded (503) when the queue is full."""
        if request.dimensions not in (None, self._dimensions):
            raise InvalidRequest(
                f"This model makes {self._dimensions}-dimensional embeddings; "
                "leave out dimensions or set it to that.",
                param="dimensions",
            )
        loop = asyncio.get_running_loop()
        job = _Job(request.texts, loop.create_future(), loop)
        try:
            self._jobs.put_nowait(job)
        except queue.Full:
            self.stats.rejected += 1
            raise Overloaded(
                "The embedding engine is busy; retry shortly.", retry_after=1.0
            ) from None
        vectors, tokens = await job.future
        rows: list[Any]
        if request.base64:
            rows = [base64.b64encode(v.astype("<f4").tobytes()).decode() for v in vectors]
        else:
            rows = vectors.tolist()
        return wire.embedding_list(request.model or self.model_name, rows, tokens)

    def _work(self) -> None:
        while True:
            first = self._jobs.get()
            if first is None:
                return
            batch = [first]
            size = len(first.texts)
            while size < self._batch_texts:
                try:
                    nxt = self._jobs.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    self._jobs.put(None)
                    break
                batch.append(nxt)
                size += len(nxt.texts)
            self._run(batch)

    def _run(self, batch: list[_Job]) -> None:
        texts = [t for job in batch for t in job.texts]
        self.stats.encoding = len(texts)
        try:
            vectors, counts = self._embedder.embed(texts)
        except Exception as exc:  # the worker thread must answer every waiting request
            for job in batch:
                job.loop.call_soon_threadsafe(_fail, job.future, exc)
            return
        finally:
            self.stats.encoding = 0
        self.stats.texts += len(texts)
        self.stats.tokens += sum(counts)
        start = 0
        for job in batch:
            end = start + len(job.texts)
            result = (vectors[start:end], sum(counts[start:end]))
            job.loop.call_soon_threadsafe(_resolve, job.future, result)
            start = end


def _resolve(future: asyncio.Future[tuple[Vectors, int]], value: tuple[Vectors, int]) -> None:
    if not future.done():
        future.set_result(value)


def _fail(future: asyncio.Future[tuple[Vectors, int]], exc: Exception) -> None:
    if not future.done():
        future.set_exception(exc)

"""FakeEngine: a scripted OpenAI-compatible HTTP server for tests, benchmarks and demos."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import struct
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson
from aiohttp import web

from corral.engines import wire

Failure = Literal["none", "error", "stall", "disconnect", "hang_up"]

_WORDS = ("Hello", " from", " the", " fake", " engine", ",", " one", " token", " at", " a", " time")


@dataclass
class FakeScript:
    """How the FakeEngine answers; change fields at any time to change later answers."""

    tokens: int = 16
    time_to_first_token: float = 0.0
    token_delay: float = 0.0
    report_usage: bool = True
    embedding_dimensions: int = 16
    failure: Failure = "none"
    fail_after_tokens: int = 0  # for "disconnect" and "stall": tokens sent before failing
    words: tuple[str, ...] = _WORDS
    chunk_per_event: bool = False
    """Without delays, write each SSE event as its own HTTP chunk (as vLLM and OpenAI-compatible
    providers do) instead of the whole stream in one."""


@dataclass
class SeenRequest:
    """One request as the FakeEngine received it."""

    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    started: float
    ended: float | None = None
    outcome: str = "open"  # open | completed | client_gone | failed


REMEMBERED = 1_000
"""Requests a FakeEngine keeps for assertions: the newest ones. Bounded, because `corral up`
serves fake models with it for as long as it runs (unbounded, it grew ~1.4 KB per request)."""


@dataclass
class FakeEngineState:
    """What the FakeEngine has seen, for assertions: the newest requests, and how many in all."""

    requests: deque[SeenRequest] = field(default_factory=lambda: deque(maxlen=REMEMBERED))
    received: int = 0

    @property
    def open_requests(self) -> int:
        """Requests still open among those remembered."""
        return sum(1 for r in self.requests if r.outcome == "open")


def count_prompt_tokens(body: dict[str, Any]) -> int:
    """A deterministic stand-in for a tokenizer: whitespace-separated words, at least one."""
    parts: list[str] = []
    messages = body.get("messages")
    for message in messages if isinstance(messages, list) else []:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str):
            parts.append(content)
    prompt = body.get("prompt")
    if isinstance(prompt, str):
        parts.append(prompt)
    return max(1, sum(len(p.split()) for p in parts))


def fake_embedding(text: str, dimensions: int) -> list[float]:
    """A deterministic unit vector derived from ``text``."""
    raw = hashlib.shake_256(text.encode()).digest(4 * dimensions)
    values = [v / 2**31 - 1.0 for v in struct.unpack(f"<{dimensions}I", raw)]
    norm = sum(v * v for v in values) ** 0.5 or 1.0
    return [v / norm for v in values]


class FakeEngine:
    """An OpenAI-compatible server with scripted tokens, delays and failures."""

    def __init__(self, script: FakeScript | None = None, *, model: str = "fake-model") -> None:
        self.script = script or FakeScript()
        self.model = model
        self.state = FakeEngineState()
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def build_app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/v1/completions", self._completions)
        app.router.add_post("/v1/embeddings", self._embeddings)
        app.router.add_get("/v1/models", self._models)
        app.router.add_get("/health", self._health)
        return app

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        """Listen on ``host:port`` (0 picks a free port; see ``.port``)."""
        self._runner = web.AppRunner(
            self.build_app(), access_log=None, handle_signals=False, handler_cancellation=True
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port or self.port, reuse_address=True)
        await site.start()
        self.port = _bound_port(site)

    async def stop(self) -> None:
        """Stop listening; later connections are refused until ``start`` runs again."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def _models(self, request: web.Request) -> web.Response:
        return web.Response(
            body=orjson.dumps(wire.model_list([self.model], "corral-fake", 0)),
            content_type="application/json",
        )

    async def _embeddings(self, request: web.Request) -> web.Response:
        seen = await self._record(request)
        items = seen.body.get("input")
        texts = [items] if isinstance(items, str) else [str(i) for i in items or []]
        dims = self.script.embedding_dimensions
        vectors: list[Any] = [fake_embedding(t, dims) for t in texts]
        if seen.body.get("encoding_format") == "base64":
            vectors = [base64.b64encode(struct.pack(f"<{dims}f", *v)).decode() for v in vectors]
        tokens = sum(max(1, len(t.split())) for t in texts)
        seen.outcome, seen.ended = "completed", time.monotonic()
        body = wire.embedding_list(str(seen.body.get("model")), vectors, tokens)
        return web.Response(body=orjson.dumps(body), content_type="application/json")

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        return await self._generate(request, chat=True)

    async def _completions(self, request: web.Request) -> web.StreamResponse:
        return await self._generate(request, chat=False)

    async def _record(self, request: web.Request) -> SeenRequest:
        body = orjson.loads(await request.read())
        seen = SeenRequest(request.path, dict(request.headers), body, time.monotonic())
        self.state.requests.append(seen)
        self.state.received += 1
        return seen

    def _planned_tokens(self, body: dict[str, Any]) -> list[str]:
        limit = body.get("max_tokens") or body.get("max_completion_tokens") or self.script.tokens
        count = min(self.script.tokens, int(limit))
        words = self.script.words
        return [words[i % len(words)] for i in range(count)]

    async def _generate(self, request: web.Request, *, chat: bool) -> web.StreamResponse:
        seen = await self._record(request)
        script = self.script
        try:
            if script.failure == "error":
                seen.outcome = "failed"
                return web.json_response(
                    {"error": {"message": "scripted failure", "type": "server_error"}}, status=500
                )
            if script.failure == "hang_up":
                seen.outcome = "failed"
                assert request.transport is not None
                request.transport.close()
                return web.Response()
            if script.failure == "stall" and script.fail_after_tokens == 0:
                await asyncio.sleep(3600)
            if seen.body.get("stream"):
                return await self._stream(request, seen, chat=chat)
            return await self._whole(seen, chat=chat)
        except (asyncio.CancelledError, ConnectionResetError):
            seen.outcome = "client_gone"
            raise
        finally:
            seen.ended = time.monotonic()

    async def _whole(self, seen: SeenRequest, *, chat: bool) -> web.Response:
        tokens = self._planned_tokens(seen.body)
        await asyncio.sleep(self.script.time_to_first_token + self.script.token_delay * len(tokens))
        finish = "length" if len(tokens) < self.script.tokens else "stop"
        prompt = count_prompt_tokens(seen.body)
        model = str(seen.body.get("model"))
        make = wire.chat_completion if chat else wire.text_completion
        body = make(
            "cmpl-fake",
            int(time.time()),
            model,
            texts=["".join(tokens)],
            finish=finish,
            prompt=prompt,
            completion=len(tokens),
        )
        if not self.script.report_usage:
            body.pop("usage")
        seen.outcome = "completed"
        return web.Response(body=orjson.dumps(body), content_type="application/json")

    def _events(self, seen: SeenRequest, *, chat: bool) -> list[bytes]:
        tokens = self._planned_tokens(seen.body)
        model, created = str(seen.body.get("model")), int(time.time())
        finish = "length" if len(tokens) < self.script.tokens else "stop"
        if chat:
            events = [wire.sse(wire.chat_chunk("chatcmpl-fake", created, model, role="assistant"))]
            events += [
                wire.sse(wire.chat_chunk("chatcmpl-fake", created, model, content=t))
                for t in tokens
            ]
            events.append(
                wire.sse(wire.chat_chunk("chatcmpl-fake", created, model, finish_reason=finish))
            )
            obj = "chat.completion.chunk"
        else:
            events = [
                wire.sse(wire.text_chunk("cmpl-fake", created, model, text=t, finish_reason=None))
                for t in tokens
            ]
            events.append(
                wire.sse(
                    wire.text_chunk("cmpl-fake", created, model, text="", finish_reason=finish)
                )
            )
            obj = "text_completion"
        options = seen.body.get("stream_options") or {}
        if self.script.report_usage and options.get("include_usage"):
            prompt = count_prompt_tokens(seen.body)
            events.append(
                wire.sse(
                    wire.usage_chunk(
                        "chatcmpl-fake",
                        created,
                        model,
                        obj=obj,
                        prompt=prompt,
                        completion=len(tokens),
                    )
                )
            )
        events.append(wire.DONE)
        return events

    async def _stream(
        self, request: web.Request, seen: SeenRequest, *, chat: bool
    ) -> web.StreamResponse:
        script = self.script
        events = self._events(seen, chat=chat)
        response = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await response.prepare(request)
        if script.time_to_first_token == 0 and script.token_delay == 0 and script.failure == "none":
            if script.chunk_per_event:
                for event in events:
                    await response.write(event)
            else:
                await response.write(b"".join(events))
        elif not await self._drip(response, events):
            seen.outcome = "failed"
            if request.transport is not None:
                request.transport.close()
            return response
        await response.write_eof()
        seen.outcome = "completed"
        return response

    async def _drip(self, response: web.StreamResponse, events: list[bytes]) -> bool:
        """Send ``events`` one at a time; False when the script fails the stream part-way."""
        script = self.script
        await asyncio.sleep(script.time_to_first_token)
        for sent, event in enumerate(events):
            if script.failure != "none" and sent > script.fail_after_tokens:
                if script.failure == "stall":
                    await asyncio.sleep(3600)
                return False
            await response.write(event)
            if 0 < sent < len(events) - 2:
                await asyncio.sleep(script.token_delay)
        return True


def _bound_port(site: web.TCPSite) -> int:
    """The port a site listens on (it picked one when asked for port 0)."""
    server = site._server  # aiohttp exposes the bound socket only through the server object
    sockets = list(getattr(server, "sockets", None) or [])
    if not sockets:
        raise RuntimeError("the FakeEngine site is not listening")
    return int(sockets[0].getsockname()[1])

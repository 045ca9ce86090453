"""The local engine's HTTP server: OpenAI routes over a chat or embedding service, /health and
/metrics."""

from __future__ import annotations

import time
from dataclasses import dataclass

import orjson
from aiohttp import web
from aiohttp.typedefs import Handler
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from corral.engines import wire
from corral.engines.local.chat_service import ChatService, GenerationFailed, Job
from corral.engines.local.embedding_service import EmbeddingService
from corral.engines.local.parsing import parse_embedding, parse_generation, read_json
from corral.errors import InvalidRequest, RequestError

_SSE_HEADERS = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}


def _json(body: object, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/json")


def _error(exc: RequestError) -> web.Response:
    response = _json(exc.envelope(), exc.status)
    if exc.retry_after is not None:
        response.headers["Retry-After"] = str(max(1, round(exc.retry_after)))
    return response


def _server_error(message: str) -> dict[str, dict[str, str | None]]:
    return {"error": {"message": message, "type": "server_error", "param": None, "code": None}}


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        response: web.StreamResponse = await handler(request)
        return response
    except RequestError as exc:
        return _error(exc)
    except GenerationFailed as exc:
        return _json(_server_error(f"The model failed while generating: {exc}"), 500)


@dataclass
class EngineLimits:
    """Per-request bounds the server enforces before queueing anything."""

    max_n: int
    max_inputs: int = 2048
    max_body_bytes: int = 16 * 1024 * 1024


class EngineServer:
    """Routes for one model: chat and completions, or embeddings."""

    def __init__(
        self,
        *,
        model_name: str,
        limits: EngineLimits,
        chat: ChatService | None = None,
        embeddings: EmbeddingService | None = None,
        metrics: CollectorRegistry | None = None,
    ) -> None:
        self._name = model_name
        self._limits = limits
        self._chat = chat
        self._embeddings = embeddings
        self._metrics = metrics if metrics is not None else CollectorRegistry()
        self._created = int(time.time())

    def build_app(self) -> web.Application:
        app = web.Application(client_max_size=self._limits.max_body_bytes, middlewares=[_errors])
        app.router.add_post("/v1/chat/completions", self._chat_completions)
        app.router.add_post("/v1/completions", self._completions)
        app.router.add_post("/v1/embeddings", self._embed)
        app.router.add_get("/v1/models", self._models)
        app.router.add_get("/health", self._health)
        app.router.add_get("/metrics", self._metrics_text)
        return app

    async def _health(self, request: web.Request) -> web.Response:
        return _json({"status": "ok", "model": self._name})

    async def _metrics_text(self, request: web.Request) -> web.Response:
        # Collectors read plain numbers, so rendering on the event loop is quick.
        response = web.Response(body=generate_latest(self._metrics))
        response.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return response

    async def _models(self, request: web.Request) -> web.Response:
        return _json(wire.model_list([self._name], "corral-local", self._created))

    async def _chat_completions(self, request: web.Request) -> web.StreamResponse:
        return await self._generate(request, chat=True)

    async def _completions(self, request: web.Request) -> web.StreamResponse:
        return await self._generate(request, chat=False)

    async def _generate(self, request: web.Request, *, chat: bool) -> web.StreamResponse:
        if self._chat is None:
            raise InvalidRequest(
                f"The model {self._name!r} makes embeddings; call /v1/embeddings instead.",
                code="wrong_endpoint",
            )
        body = read_json(await request.read())
        parsed = parse_generation(body, chat=chat, max_n=self._limits.max_n)
        job = self._chat.start(parsed, chat=chat)
        try:
            if not parsed.stream:
                return _json(await self._chat.complete(job))
            return await self._stream(request, job)
        finally:
            # Also reached when the client disconnects: the handler is cancelled mid-await.
            self._chat.cancel(job)

    async def _stream(self, request: web.Request, job: Job) -> web.StreamResponse:
        assert self._chat is not None
        response = web.StreamResponse(headers=_SSE_HEADERS)
        await response.prepare(request)
        try:
            async for event in self._chat.stream(job):
                await response.write(event)
        except GenerationFailed as exc:
            await response.write(wire.sse(_server_error(f"The model failed: {exc}")))
        await response.write_eof()
        return response

    async def _embed(self, request: web.Request) -> web.Response:
        if self._embeddings is None:
            raise InvalidRequest(
                f"The model {self._name!r} is a chat model; it does not make embeddings.",
                code="wrong_endpoint",
            )
        body = read_json(await request.read())
        parsed = parse_embedding(body, max_inputs=self._limits.max_inputs)
        return _json(await self._embeddings.answer(parsed))

"""Relays one call to an engine over pooled connections, streaming bytes through as they come."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson

from corral.errors import RequestError, UpstreamTimeout, UpstreamUnavailable
from corral.gateway.asgi import EVENT_STREAM, JSON, Headers, Send, send_bytes
from corral.gateway.calls import ApiCall
from corral.gateway.routes import LiveEndpoint, ModelRoute
from corral.gateway.sse import StreamScanner
from corral.gateway.tracing import NoopTracer, RequestTracer
from corral.gateway.transport import (
    Target,
    UpstreamConnectError,
    UpstreamPool,
    UpstreamResponse,
)

log = logging.getLogger("corral.gateway.relay")

# Client errors an engine reports about the request itself are passed on as they are; anything
# else (5xx, or the engine refusing the gateway's own credentials) is the platform's problem.
_PASS_THROUGH = frozenset({400, 404, 413, 422, 429})


@dataclass(slots=True)
class Outcome:
    """How a relayed call ended, for metering."""

    status: int = 0
    outcome: str = "ok"
    prompt_tokens: int = 0
    completion_tokens: int = 0
    estimated: bool = False
    first_byte_at: float | None = None


@dataclass(slots=True)
class Exchange:
    """One call on its way through the relay, and what it is sent as."""

    call: ApiCall
    route: ModelRoute
    endpoint: LiveEndpoint
    body: bytes
    request_id: str
    headers: Headers
    outcome: Outcome
    on_tokens: Callable[[int], None] | None = None
    """Told the completion tokens streamed so far, as they stream (the fair queue's charge)."""


def new_session(connections: int = 0) -> aiohttp.ClientSession:
    """The shared, pooled client session for all engines (``connections``: 0 means no limit)."""
    connector = aiohttp.TCPConnector(
        limit=connections, limit_per_host=0, keepalive_timeout=60, ttl_dns_cache=300
    )
    return aiohttp.ClientSession(
        connector=connector,
        auto_decompress=False,
        skip_auto_headers=("User-Agent",),
        json_serialize=lambda o: orjson.dumps(o).decode(),
    )


class Relay:
    """Sends calls to engines and the answers back to the client."""

    def __init__(self, *, connections: int = 0, tracer: RequestTracer | None = None) -> None:
        self._connections = connections
        self._tracer = tracer or NoopTracer()
        self._session: aiohttp.ClientSession | None = None
        self._pool = UpstreamPool()
        self._targets: dict[str, Target] = {}  # parsed once per endpoint, not on every call

    async def open(self) -> None:
        """Create the connection pools (inside the serving event loop)."""
        if self._session is None:
            self._session = new_session(self._connections)

    async def close(self) -> None:
        """Close every pooled connection."""
        await self._pool.close()
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def session(self) -> aiohttp.ClientSession:
        """A general HTTP client for everything but relayed calls (probes, wake-ups)."""
        if self._session is None:
            raise RuntimeError("Relay.open() must run before the first request")
        return self._session

    async def relay(self, ex: Exchange, send: Send) -> None:
        """Relay ``ex`` to its endpoint, filling in ``ex.outcome`` as it goes (so a cancelled
        relay still leaves what was relayed); errors before the first byte raise RequestError."""
        with self._tracer.child("upstream") as span:
            span.set("server.address", ex.endpoint.replica)
            await self._relay(ex, send)

    async def _relay(self, ex: Exchange, send: Send) -> None:
        route = ex.route
        timeouts = route.timeouts
        headers = _FIXED_HEADERS + b"X-Request-Id: " + ex.request_id.encode() + b"\r\n"
        if route.auth_header is not None:
            headers += b"Authorization: " + route.auth_header.encode("latin-1") + b"\r\n"
        traced: dict[str, str] = {}
        self._tracer.inject(traced)
        for name, value in traced.items():
            headers += f"{name}: {value}\r\n".encode("latin-1")
        # A whole answer may be silent until it is done (first_byte); a stream's own relay adds
        # first-chunk and idle deadlines on top of the read timeout.
        stream = ex.call.stream
        silence = max(timeouts.first_byte, timeouts.idle) if stream else timeouts.first_byte
        try:
            async with asyncio.timeout(timeouts.total):
                try:
                    response = await self._pool.post(
                        self._target(ex.endpoint.base_url),
                        _PATHS[ex.call.kind.value],
                        headers,
                        ex.body,
                        connect_timeout=timeouts.connect,
                        read_timeout=silence,
                    )
                except UpstreamConnectError as exc:
                    raise UpstreamUnavailable(
                        f"Could not connect to the engine for model {route.name!r}; it may be "
                        "starting or down. Try again shortly."
                    ) from exc
                except TimeoutError as exc:
                    raise _timed_out(route, timeouts.first_byte) from exc
                except OSError as exc:
                    raise _failed(route, exc) from exc
                try:
                    if response.status != 200:
                        await _refusal(ex, response, send)
                    elif stream:
                        await _stream(ex, response, send)
                    else:
                        await _whole(ex, response, send)
                finally:
                    response.close()
        except TimeoutError as exc:  # the total deadline
            if ex.outcome.first_byte_at is None:  # nothing sent yet: a clean 504
                raise _timed_out(route, timeouts.total) from exc
            ex.outcome.outcome = "timeout"
            await end_with_error(
                send, UpstreamTimeout(f"The answer took longer than {timeouts.total:g} s.")
            )

    def _target(self, base_url: str) -> Target:
        target = self._targets.get(base_url)
        if target is None:
            target = self._targets[base_url] = Target.parse(base_url)
        return target


_FIXED_HEADERS = b"Content-Type: application/json\r\nAccept-Encoding: identity\r\n"
_PATHS = {kind: f"/{kind}".encode() for kind in ("chat/completions", "completions", "embeddings")}


async def _refusal(ex: Exchange, response: UpstreamResponse, send: Send) -> None:
    route = ex.route
    try:
        payload = await response.read()
    except TimeoutError as exc:
        raise _timed_out(route, route.timeouts.first_byte) from exc
    except OSError as exc:
        raise _failed(route, exc) from exc
    if response.status in _PASS_THROUGH:
        content_type = response.header(b"content-type") or b"application/json"
        ex.outcome.status, ex.outcome.outcome = response.status, "client_error"
        await send_bytes(send, response.status, payload, ex.headers, content_type)
        return
    log.warning("engine refused a request", extra={"model": route.name, "status": response.status})
    raise UpstreamUnavailable(
        f"The engine for model {route.name!r} failed (HTTP {response.status}). "
        "Try again shortly; if it persists, tell the platform team."
    )


def _read_usage(payload: bytes, outcome: Outcome) -> None:
    try:
        usage = orjson.loads(payload).get("usage")
    except (orjson.JSONDecodeError, AttributeError):
        usage = None
    _apply_usage(usage, outcome)


def _apply_usage(usage: Any, outcome: Outcome) -> bool:
    if not isinstance(usage, dict):
        return False
    prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens", 0)
    if not isinstance(prompt, int) or not isinstance(completion, int):
        return False
    outcome.prompt_tokens, outcome.completion_tokens = prompt, completion
    return True


async def _whole(ex: Exchange, response: UpstreamResponse, send: Send) -> None:
    route, outcome = ex.route, ex.outcome
    try:
        payload = await response.read()
    except TimeoutError as exc:
        raise _timed_out(route, route.timeouts.first_byte) from exc
    except OSError as exc:
        raise _failed(route, exc) from exc
    outcome.status, outcome.first_byte_at = 200, asyncio.get_running_loop().time()
    _read_usage(payload, outcome)
    await send_bytes(send, 200, payload, ex.headers, JSON)


async def _stream(ex: Exchange, response: UpstreamResponse, send: Send) -> None:
    """Relay an SSE stream; the response starts with the first upstream byte, so an engine that
    never sends one still gets a clean 504 (and, later, a retry elsewhere)."""
    loop = asyncio.get_running_loop()
    route, outcome = ex.route, ex.outcome
    timeouts = route.timeouts
    scanner = StreamScanner(strip_usage=not ex.call.wants_usage)
    chunks = response.chunks()
    try:
        try:
            response.set_read_timeout(timeouts.first_byte)  # a no-op unless idle is longer
            first = await anext(chunks)
        except TimeoutError as exc:
            raise _timed_out(route, timeouts.first_byte) from exc
        except StopAsyncIteration:
            first = b""
        except OSError as exc:
            raise _failed(route, exc) from exc
        outcome.status, outcome.first_byte_at = 200, loop.time()
        start_headers = [
            (b"content-type", EVENT_STREAM),
            (b"cache-control", b"no-cache"),
            *ex.headers,
        ]
        await send({"type": "http.response.start", "status": 200, "headers": start_headers})
        response.set_read_timeout(timeouts.idle)
        await _relay_chunks(
            first,
            chunks,
            scanner,
            send,
            idle=timeouts.idle,
            outcome=outcome,
            on_tokens=ex.on_tokens,
        )
    finally:
        _take_usage(scanner, outcome)  # again, for a stream that ended without its last event


def _take_usage(scanner: StreamScanner, outcome: Outcome) -> None:
    """The stream's usage into ``outcome``: as the engine reported it, else estimated from the
    events seen. Runs before the stream's last byte (the record is made then) and after."""
    if not _apply_usage(scanner.usage, outcome):
        outcome.completion_tokens = scanner.tokens_seen
        outcome.estimated = True


async def _relay_chunks(
    first: bytes,
    chunks: AsyncIterator[bytes],
    scanner: StreamScanner,
    send: Send,
    *,
    idle: float,
    outcome: Outcome,
    on_tokens: Callable[[int], None] | None = None,
) -> None:
    # The idle limit is the connection's read timeout (set by the caller): no timer per chunk.
    try:
        out = scanner.feed(first)
        if out:
            await send({"type": "http.response.body", "body": out, "more_body": True})
        async for chunk in chunks:
            seen = scanner.tokens_seen
            out = scanner.feed(chunk)
            if on_tokens is not None and scanner.tokens_seen != seen:
                on_tokens(scanner.tokens_seen)
            if out:
                await send({"type": "http.response.body", "body": out, "more_body": True})
    except TimeoutError:
        outcome.outcome = "timeout"
        _take_usage(scanner, outcome)
        await end_with_error(send, UpstreamTimeout(f"The engine sent nothing for {idle:g} s."))
    except OSError as exc:
        outcome.outcome = "upstream_error"
        _take_usage(scanner, outcome)
        await end_with_error(
            send, UpstreamUnavailable(f"The engine failed mid-stream ({type(exc).__name__}).")
        )
    else:
        tail = scanner.finish()
        _take_usage(scanner, outcome)
        await send({"type": "http.response.body", "body": tail})


def _timed_out(route: ModelRoute, seconds: float) -> UpstreamTimeout:
    return UpstreamTimeout(
        f"The engine for model {route.name!r} did not answer within {seconds:g} s. "
        "Try again, or ask for fewer tokens."
    )


def _failed(route: ModelRoute, exc: BaseException) -> UpstreamUnavailable:
    return UpstreamUnavailable(
        f"The engine for model {route.name!r} failed before answering "
        f"({type(exc).__name__}). Try again shortly."
    )


async def end_with_error(send: Send, error: RequestError) -> None:
    """End a stream already under way with an SSE error event (OpenAI's error envelope)."""
    event = b"data: " + orjson.dumps(error.envelope()) + b"\n\n"
    await send({"type": "http.response.body", "body": event})

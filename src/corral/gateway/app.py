"""The gateway's ASGI app: one pipeline for every relayed call (admit → route → relay → meter)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field

from starlette.types import ASGIApp

from corral.clock import Clock
from corral.counters.limits import MICROS_PER_USD
from corral.counters.port import Reservation
from corral.engines import wire
from corral.errors import (
    AuthenticationFailed,
    InvalidRequest,
    NotFound,
    Overloaded,
    PermissionDenied,
    RequestError,
)
from corral.gateway.asgi import (
    ClientGone,
    Headers,
    Message,
    Receive,
    Scope,
    Send,
    header,
    read_body,
    send_error,
    send_json,
)
from corral.gateway.calls import ApiCall, CallKind, parse_call
from corral.gateway.dispatch import Attempt, Dispatcher, attempt_for
from corral.gateway.logs import request_id_var
from corral.gateway.metering import Meter, Settlement, UsageEvent
from corral.gateway.metrics import GatewayMetrics, status_class
from corral.gateway.policies.quotas import prompt_estimate
from corral.gateway.quotas import Quotas
from corral.gateway.relay import Outcome, Relay, end_with_error
from corral.gateway.routes import ModelRoute, RouteTable
from corral.gateway.tracing import NoopTracer, RequestTracer
from corral.principals import KeyDirectory, Principal

log = logging.getLogger("corral.gateway")

_CALLS = {
    "/v1/chat/completions": CallKind.CHAT,
    "/v1/completions": CallKind.COMPLETIONS,
    "/v1/embeddings": CallKind.EMBEDDINGS,
}
_MAX_KEY_LENGTH = 512
_WATCH_AFTER_S = 0.05
"""Calls answered sooner never pay for a disconnect watcher; slower ones get one then."""
_REFUSALS = frozenset({"rate_limit_exceeded", "budget_exceeded", "queue_full", "overloaded"})
SHUTDOWN_OUTCOME = "shutdown"
"""Outcome of a request the drain cut short (drain_timeout ran out): recorded as such, 503."""


@dataclass(frozen=True, slots=True)
class GatewayParts:
    """Everything the request pipeline needs, built once by the composition root."""

    routes: RouteTable
    keys: KeyDirectory
    relay: Relay
    meter: Meter
    metrics: GatewayMetrics
    clock: Clock
    max_body_bytes: int
    max_in_flight: int
    quotas: Quotas | None = None
    tracer: RequestTracer = field(default_factory=NoopTracer)
    on_key_use: Callable[[str], None] | None = None  # last-used times, batched elsewhere
    access_log: bool = True


class Gateway:
    """ASGI app serving the OpenAI API; everything else goes to ``fallback``."""

    def __init__(self, parts: GatewayParts, fallback: ASGIApp) -> None:
        self._parts = parts
        self._fallback = fallback
        self._dispatcher = Dispatcher(parts.relay, parts.routes, parts.clock, parts.metrics)
        self._in_flight = 0
        self._tasks: set[asyncio.Task[object]] = set()
        self._cutting = False

    @property
    def in_flight(self) -> int:
        return self._in_flight

    def cut_open_requests(self) -> int:
        """End every request still open (the drain ran out of time): each ends with an error
        (an SSE error event for a stream already under way), is recorded with outcome
        ``shutdown`` and settled. The number of requests cut."""
        self._cutting = True
        for task in self._tasks:
            task.cancel()
        return len(self._tasks)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path, method = scope["path"], scope["method"]
            kind = _CALLS.get(path)
            if kind is not None:
                if method == "POST":
                    await self._call(kind, scope, receive, send)
                else:
                    await _method_not_allowed(send, path, b"POST")
                return
            if path == "/v1/models" or path.startswith("/v1/models/"):
                if method == "GET":
                    await self._models(scope, send)
                else:
                    await _method_not_allowed(send, path, b"GET")
                return
        await self._fallback(scope, receive, send)

    async def _call(self, kind: CallKind, scope: Scope, receive: Receive, send: Send) -> None:
        parts = self._parts
        request_id = "req_" + os.urandom(12).hex()
        state = _Request(request_id, asyncio.get_running_loop().time())
        token = request_id_var.set(request_id)
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._in_flight += 1
        parts.metrics.in_flight.inc()
        tracer = parts.tracer
        send = self._handing_off(state, send)
        with tracer.request_span(
            "POST", scope["path"], request_id=request_id, incoming=scope["headers"]
        ) as span:
            outcome = state.outcome
            try:
                await self._admit_and_serve(kind, state, scope, receive, send)
            except RequestError as error:
                outcome.status, outcome.outcome = error.status, _outcome_of(error)
                if error.code in _REFUSALS:
                    model = state.route.name if state.route is not None else "-"
                    parts.metrics.refusals.labels(model, error.code).inc()
                await send_error(send, error, state.headers)
            except ClientGone:
                outcome.status, outcome.outcome = 499, "client_gone"
            except asyncio.CancelledError:
                if not self._cutting:
                    raise
                task.uncancel()
                await self._end_cut(state, send)
            finally:
                self._tasks.discard(task)
                self._in_flight -= 1
                parts.metrics.in_flight.dec()
                with tracer.child("metering"):
                    await self._account(state)
                span.finish(outcome.status, outcome.outcome)
        request_id_var.reset(token)

    def _handing_off(self, state: _Request, send: Send) -> Send:
        """``send`` that records the request (the durable hand-off) before the answer's last
        byte leaves, so no client holds a whole answer whose record a crash could lose."""

        async def handing_off(message: Message) -> None:
            if message["type"] == "http.response.start":
                state.responded = True
            elif not message.get("more_body", False) and not state.handed_off:
                self._hand_off(state)
            await send(message)

        return handing_off

    async def _end_cut(self, state: _Request, send: Send) -> None:
        """End a request the drain cut: an error the client can read, recorded as such."""
        outcome = state.outcome
        outcome.outcome, outcome.status = SHUTDOWN_OUTCOME, 503
        error = Overloaded(
            "The gateway shut down before this answer was complete; retry the request.",
            retry_after=1,
        )
        with contextlib.suppress(OSError, ClientGone):
            if not state.responded:
                await send_error(send, error, state.headers)
            elif state.call is not None and state.call.stream:
                await end_with_error(send, error)
            else:
                await send({"type": "http.response.body", "body": b""})

    async def _admit_and_serve(
        self, kind: CallKind, state: _Request, scope: Scope, receive: Receive, send: Send
    ) -> None:
        parts = self._parts
        with parts.tracer.child("admission"):
            if self._in_flight > parts.max_in_flight:
                raise Overloaded(
                    "This gateway is at its limit of concurrent requests; try again shortly.",
                    retry_after=1,
                )
            principal = state.principal = self._authenticate(scope)
            if parts.on_key_use is not None:
                parts.on_key_use(principal.key_id)
            call = state.call = parse_call(
                kind, await read_body(scope, receive, parts.max_body_bytes)
            )
            with parts.tracer.child("routing"):
                route = state.route = self._route(call.model, principal)
            if parts.quotas is not None:
                state.reservation = await parts.quotas.admit(
                    principal, call, route, state.request_id, state.headers
                )
        attempt = attempt_for(
            call,
            route,
            team=principal.team_id,
            session_header=_text(header(scope, b"x-session-id")),
            request_id=state.request_id,
            headers=state.headers,
            outcome=state.outcome,
        )
        state.attempt = attempt
        try:
            await self._until_disconnect(attempt, receive, send)
        finally:
            state.route, state.endpoint = attempt.route, attempt.endpoint

    async def _account(self, state: _Request) -> None:
        """Record the request (if the answer's end has not already) and only then settle its
        reservation: exactly once, whatever happened."""
        if not state.handed_off:
            self._hand_off(state)
        settlement = state.settlement
        quotas = self._parts.quotas
        if settlement is not None and quotas is not None:
            await quotas.settle_as(settlement)
        self._log(state)

    async def _until_disconnect(self, attempt: Attempt, receive: Receive, send: Send) -> None:
        """Dispatch, cancelling the upstream request as soon as the client disconnects."""
        task = asyncio.current_task()
        assert task is not None
        watch = _DisconnectWatch(task, receive)
        timer = asyncio.get_running_loop().call_later(_WATCH_AFTER_S, watch.start)
        try:
            await self._dispatcher.dispatch(attempt, send)
        except asyncio.CancelledError:
            if not watch.gone:
                raise
            task.uncancel()
            attempt.outcome.outcome = "client_gone"
            attempt.outcome.status = attempt.outcome.status or 499
        finally:
            timer.cancel()
            watch.stop()

    def _authenticate(self, scope: Scope) -> Principal:
        value = header(scope, b"authorization")
        if not value:
            raise AuthenticationFailed(
                "No API key provided. Send it as 'Authorization: Bearer <key>'.",
                code="missing_api_key",
            )
        scheme, _, key = value.partition(b" ")
        key = key.strip()
        if scheme.lower() != b"bearer" or not key or len(key) > _MAX_KEY_LENGTH:
            raise AuthenticationFailed(
                "The Authorization header must be 'Bearer <key>' with a Corral API key."
            )
        principal = self._parts.keys.lookup(key.decode("latin-1"), self._parts.clock.now())
        if principal is None:
            raise AuthenticationFailed(
                "Incorrect, revoked or expired API key. Create a new key, or ask your team admin."
            )
        return principal

    def _route(self, model: str, principal: Principal) -> ModelRoute:
        route = self._parts.routes.get(model)
        if route is not None and principal.may_use(route.name):
            return route
        if route is not None:
            if _may_use_alias(principal, route):
                return route
            raise PermissionDenied(
                f"This API key may not use model {model[:200]!r}; it may use: "
                f"{', '.join(self._usable(principal)) or '(none)'}. Ask your team-admin for a "
                "key that includes it.",
                param="model",
                code="model_not_allowed",
            )
        return self._parts.routes.resolve(model, self._usable(principal))

    def _usable(self, principal: Principal) -> list[str]:
        """The model names a key may call (an allow-list may name a model by an alias)."""
        routes = self._parts.routes
        return [
            n
            for n in routes.names()
            if principal.may_use(n) or _may_use_alias(principal, routes.get(n))
        ]

    async def _models(self, scope: Scope, send: Send) -> None:
        request_id = "req_" + os.urandom(12).hex()
        headers: Headers = [(b"x-request-id", request_id.encode())]
        try:
            principal = self._authenticate(scope)
            names = self._usable(principal)
            path: str = scope["path"]
            if path == "/v1/models":
                await send_json(send, 200, wire.model_list(names, "corral", 0), headers)
                return
            name = path.removeprefix("/v1/models/")
            route = self._parts.routes.get(name)  # a model's name or one of its aliases
            if route is not None and route.name not in names:
                raise PermissionDenied(
                    f"This API key may not use model {name[:200]!r}.",
                    param="model",
                    code="model_not_allowed",
                )
            if route is None:
                raise NotFound(
                    f"The model {name[:200]!r} does not exist.",
                    param="model",
                    code="model_not_found",
                )
            await send_json(send, 200, wire.model_card(name, "corral", 0), headers)
        except RequestError as error:
            await send_error(send, error, headers)

    def _hand_off(self, state: _Request) -> None:
        """Give the request's record, with how its reservation is to be settled, to the meters
        (the ledger journals it to disk at once)."""
        parts = self._parts
        if state.attempt is not None:  # where it was served (a fallback model, an endpoint)
            state.route, state.endpoint = state.attempt.route, state.attempt.endpoint
        principal, call, route, outcome = state.principal, state.call, state.route, state.outcome
        if outcome.estimated and not outcome.prompt_tokens and call is not None:
            outcome.prompt_tokens = prompt_estimate(call.body)
        state.handed_off = True
        if principal is None or call is None or route is None:
            model = route.name if route is not None else "-"
            parts.metrics.requests.labels(model, "-", status_class(outcome.status)).inc()
            return
        prompt, completion = outcome.prompt_tokens, outcome.completion_tokens
        micros = route.cost_micros(prompt, completion)
        if state.reservation is not None:
            state.settlement = Settlement(state.reservation, prompt + completion, micros)
        now = asyncio.get_running_loop().time()
        parts.meter.record(
            UsageEvent(
                request_id=state.request_id,
                time=parts.clock.now(),
                key_id=principal.key_id,
                team_id=principal.team_id,
                user_id=principal.user_id,
                model=route.name,
                endpoint=state.endpoint,
                kind=call.kind.value,
                status=outcome.status,
                prompt_tokens=prompt,
                completion_tokens=completion,
                cost_usd=micros / MICROS_PER_USD,
                estimated=outcome.estimated,
                latency=now - state.started,
                time_to_first_token=(
                    outcome.first_byte_at - state.started if outcome.first_byte_at else None
                ),
                outcome=outcome.outcome,
            ),
            state.settlement,
        )

    def _log(self, state: _Request) -> None:
        if self._parts.access_log:
            outcome, route = state.outcome, state.route
            now = asyncio.get_running_loop().time()
            log.info(
                "request",
                extra={
                    "model": route.name if route is not None else "-",
                    "status": outcome.status,
                    "outcome": outcome.outcome,
                    "ms": round((now - state.started) * 1000, 2),
                },
            )


@dataclass(slots=True)
class _Request:
    """What one API request has gathered on its way through the pipeline."""

    request_id: str
    started: float
    headers: Headers = field(default_factory=list)
    outcome: Outcome = field(default_factory=Outcome)
    principal: Principal | None = None
    call: ApiCall | None = None
    route: ModelRoute | None = None
    reservation: Reservation | None = None
    endpoint: str = ""
    attempt: Attempt | None = None
    responded: bool = False
    handed_off: bool = False
    settlement: Settlement | None = None

    def __post_init__(self) -> None:
        self.headers.append((b"x-request-id", self.request_id.encode()))


class _DisconnectWatch:
    """Cancels a request's task when its client disconnects, once ``start`` has run."""

    __slots__ = ("_receive", "_task", "_watcher", "gone")

    def __init__(self, task: asyncio.Task[object], receive: Receive) -> None:
        self._task = task
        self._receive = receive
        self._watcher: asyncio.Task[None] | None = None
        self.gone = False

    def start(self) -> None:
        self._watcher = asyncio.get_running_loop().create_task(self._watch())

    def stop(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()

    async def _watch(self) -> None:
        while (await self._receive())["type"] != "http.disconnect":
            pass
        self.gone = True
        self._task.cancel()


async def _method_not_allowed(send: Send, path: str, allow: bytes) -> None:
    error = InvalidRequest(
        f"{path[:200]} only answers {allow.decode()} requests.", code="method_not_allowed"
    )
    error.status = 405
    await send_error(send, error, [(b"allow", allow)])


def _text(value: bytes | None) -> str | None:
    return value.decode("latin-1") if value else None


def _outcome_of(error: RequestError) -> str:
    if error.status == 504:
        return "timeout"
    if error.status == 502:
        return "upstream_error"
    if error.status in (429, 503):
        return "refused"
    return "client_error"


def _may_use_alias(principal: Principal, route: ModelRoute | None) -> bool:
    """Whether a key's allow-list names ``route`` by one of its aliases (e.g. ``smollm2``)."""
    return route is not None and any(principal.may_use(a) for a in route.spec.aliases)

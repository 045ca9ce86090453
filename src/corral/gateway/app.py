"""The gateway's ASGI app: one pipeline for every relayed call (admit → route → relay → meter)."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field

from starlette.types import ASGIApp

from corral.clock import Clock
from corral.counters.port import Reservation
from corral.engines import wire
from corral.errors import (
    AuthenticationFailed,
    NotFound,
    Overloaded,
    PermissionDenied,
    RequestError,
)
from corral.gateway.asgi import (
    ClientGone,
    Headers,
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
from corral.gateway.metering import Meter, UsageEvent
from corral.gateway.metrics import GatewayMetrics, status_class
from corral.gateway.policies.quotas import prompt_estimate
from corral.gateway.quotas import Quotas
from corral.gateway.relay import Outcome, Relay
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

    @property
    def in_flight(self) -> int:
        return self._in_flight

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path = scope["path"]
            kind = _CALLS.get(path)
            if kind is not None and scope["method"] == "POST":
                await self._call(kind, scope, receive, send)
                return
            if path == "/v1/models" or path.startswith("/v1/models/"):
                await self._models(scope, send)
                return
        await self._fallback(scope, receive, send)

    async def _call(self, kind: CallKind, scope: Scope, receive: Receive, send: Send) -> None:
        parts = self._parts
        request_id = "req_" + os.urandom(12).hex()
        state = _Request(request_id, asyncio.get_running_loop().time())
        token = request_id_var.set(request_id)
        self._in_flight += 1
        parts.metrics.in_flight.inc()
        tracer = parts.tracer
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
            finally:
                self._in_flight -= 1
                parts.metrics.in_flight.dec()
                with tracer.child("metering"):
                    await self._account(state)
                span.finish(outcome.status, outcome.outcome)
        request_id_var.reset(token)

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
        try:
            await self._until_disconnect(attempt, receive, send)
        finally:
            state.route, state.endpoint = attempt.route, attempt.endpoint

    async def _account(self, state: _Request) -> None:
        """Settle the reservation and record the request: exactly once, whatever happened."""
        outcome, call = state.outcome, state.call
        if outcome.estimated and not outcome.prompt_tokens and call is not None:
            outcome.prompt_tokens = prompt_estimate(call.body)
        if state.reservation is not None and state.route is not None:
            await self._settle(state.reservation, state.route, outcome)
        self._finish(state)

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

    async def _settle(self, reservation: Reservation, route: ModelRoute, outcome: Outcome) -> None:
        quotas = self._parts.quotas
        assert quotas is not None
        if outcome.prompt_tokens or outcome.completion_tokens:
            await quotas.settle(
                reservation, route, outcome.prompt_tokens, outcome.completion_tokens
            )
        else:
            await quotas.release(reservation)

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

    def _finish(self, state: _Request) -> None:
        parts = self._parts
        now = asyncio.get_running_loop().time()
        principal, call, route, outcome = state.principal, state.call, state.route, state.outcome
        model = route.name if route is not None else "-"
        if principal is not None and call is not None and route is not None:
            parts.meter.record(
                UsageEvent(
                    request_id=state.request_id,
                    time=parts.clock.now(),
                    key_id=principal.key_id,
                    team_id=principal.team_id,
                    user_id=principal.user_id,
                    model=model,
                    endpoint=state.endpoint,
                    kind=call.kind.value,
                    status=outcome.status,
                    prompt_tokens=outcome.prompt_tokens,
                    completion_tokens=outcome.completion_tokens,
                    cost_usd=route.cost_usd(outcome.prompt_tokens, outcome.completion_tokens),
                    estimated=outcome.estimated,
                    latency=now - state.started,
                    time_to_first_token=(
                        outcome.first_byte_at - state.started if outcome.first_byte_at else None
                    ),
                    outcome=outcome.outcome,
                )
            )
        else:
            parts.metrics.requests.labels(model, "-", status_class(outcome.status)).inc()
        if parts.access_log:
            log.info(
                "request",
                extra={
                    "model": model,
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

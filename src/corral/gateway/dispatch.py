"""Gets one call answered: cold start, fair queue, endpoint choice, retries, fallback models."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from corral.clock import Clock
from corral.errors import (
    Overloaded,
    RateLimited,
    RequestError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from corral.gateway.asgi import Headers, Send
from corral.gateway.calls import ApiCall, upstream_body
from corral.gateway.metrics import GatewayMetrics
from corral.gateway.policies.admission_queue import AdmissionOutcome
from corral.gateway.policies.descriptors import routing_key, token_demand
from corral.gateway.policies.fair_queue import Served
from corral.gateway.policies.routing import RoutingKey
from corral.gateway.relay import Exchange, Outcome, Relay
from corral.gateway.routes import ModelRoute, RouteTable

# Failures that happen before any byte reaches the client, so another attempt is safe.
_RETRYABLE = (UpstreamUnavailable, UpstreamTimeout)


@dataclass(slots=True)
class Attempt:
    """The call being served, and what serving it has learned so far."""

    call: ApiCall
    team: str
    key: RoutingKey
    request_id: str
    headers: Headers
    outcome: Outcome
    route: ModelRoute
    endpoint: str = ""


def attempt_for(
    call: ApiCall,
    route: ModelRoute,
    *,
    team: str | None,
    session_header: str | None,
    request_id: str,
    headers: Headers,
    outcome: Outcome,
) -> Attempt:
    """What the dispatcher needs to know about one call."""
    key = (
        routing_key(call.body, session_header)
        if route.policy.value.endswith("affinity")
        else (RoutingKey())
    )
    return Attempt(call, team or "-", key, request_id, headers, outcome, route)


class Dispatcher:
    """Runs the attempt loop for one call; decides nothing the policies do not decide."""

    def __init__(
        self, relay: Relay, routes: RouteTable, clock: Clock, metrics: GatewayMetrics
    ) -> None:
        self._relay = relay
        self._routes = routes
        self._clock = clock
        self._metrics = metrics

    async def dispatch(self, attempt: Attempt, send: Send) -> None:
        """Serve ``attempt`` on its model, then on each fallback model while none can answer."""
        candidates = [attempt.route]
        candidates += [r for n in attempt.route.spec.fallbacks if (r := self._routes.get(n))]
        last: RequestError | None = None
        for route in candidates:
            attempt.route = route
            try:
                await self._on_model(attempt, route, send)
                return
            except (*_RETRYABLE, Overloaded) as error:
                last = error
        assert last is not None
        raise last

    async def _on_model(self, attempt: Attempt, route: ModelRoute, send: Send) -> None:
        cold = route.cold_start
        if cold is not None:
            # A model that may be scaled to zero: held (bounded) until a replica runs.
            deadline = self._clock.monotonic() + route.spec.timeouts.total
            if not await cold.ensure_ready(route.name, deadline):
                raise cold.refusal(route.name)
        queue = route.queue
        if queue is None:
            await self._attempts(attempt, route, send)
            return
        demand = token_demand(attempt.call.body, route.spec.max_tokens_default)
        admission = await queue.acquire(attempt.team, demand)
        self._metrics.queue_wait.labels(route.name).observe(admission.waited_s)
        if admission.outcome is AdmissionOutcome.QUEUE_FULL:
            raise RateLimited(
                f"Model {route.name!r} is saturated and its queue is full, your team's "
                f"share the largest; send fewer at once, or retry in "
                f"{admission.retry_after_s:g} s.",
                code="queue_full",
                retry_after=admission.retry_after_s,
            )
        if admission.outcome is not AdmissionOutcome.GO or admission.lease is None:
            raise Overloaded(
                f"Model {route.name!r} stayed saturated for {admission.waited_s:.1f} s; "
                f"retry in {admission.retry_after_s:g} s.",
                retry_after=admission.retry_after_s,
            )
        lease = admission.lease
        outcome = attempt.outcome
        try:
            await self._attempts(attempt, route, send, lambda n: queue.progress(lease, n))
        finally:
            queue.release(lease, _served(outcome))

    async def _attempts(
        self,
        attempt: Attempt,
        route: ModelRoute,
        send: Send,
        on_tokens: Callable[[int], None] | None = None,
    ) -> None:
        """First attempt, then retries on other endpoints within the retry budget."""
        clock = self._clock
        body = upstream_body(attempt.call, route.spec.upstream_name())
        route.retries.record_request(clock.monotonic())
        tried: set[int] = set()
        last_error: RequestError | None = None
        while True:
            try:
                index = route.pick(attempt.key, clock.monotonic(), frozenset(tried))
            except Overloaded:
                if last_error is None:
                    raise
                raise last_error from None
            endpoint = route.endpoints[index]
            attempt.endpoint = endpoint.base_url
            exchange = Exchange(
                attempt.call,
                route,
                endpoint,
                body,
                attempt.request_id,
                attempt.headers,
                attempt.outcome,
                on_tokens,
            )
            started = asyncio.get_running_loop().time()  # the clock of outcome.first_byte_at
            endpoint.in_flight += 1
            try:
                await self._relay.relay(exchange, send)
            except _RETRYABLE as error:
                route.failed(index, clock.monotonic())
                tried.add(index)
                last_error = error
                if not route.retries.try_retry(clock.monotonic()):
                    raise
                self._metrics.retries.labels(route.name).inc()
                continue
            finally:
                endpoint.in_flight -= 1
            self._learn(route, index, attempt.outcome, started)
            return

    def _learn(self, route: ModelRoute, index: int, outcome: Outcome, started: float) -> None:
        if outcome.outcome in ("upstream_error", "timeout"):
            route.failed(index, self._clock.monotonic())
        elif outcome.first_byte_at is not None:
            route.succeeded(index, max(0.0, outcome.first_byte_at - started))
        else:
            route.succeeded(index, None)


def _served(outcome: Outcome) -> Served | None:
    """What the fair queue charges: nothing when no answer came (failed, refused); else the
    tokens relayed, with the engine's prompt count when it gave one."""
    if outcome.first_byte_at is None:
        return None
    return Served(outcome.completion_tokens, outcome.prompt_tokens or None)

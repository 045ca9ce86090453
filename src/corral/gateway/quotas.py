"""Admission against limits and budgets: reserve at the door, settle to real usage at the end."""

from __future__ import annotations

import logging
import math

from corral.clock import Clock
from corral.counters.limits import Limits
from corral.counters.port import BudgetPeriod, Counters, Refused, Reservation, Scope
from corral.errors import Overloaded, TemporaryError
from corral.gateway.asgi import Headers
from corral.gateway.calls import ApiCall, CallKind
from corral.gateway.metering import Settlement
from corral.gateway.policies.quotas import (
    admission_request,
    cost_micros,
    month_window,
    ratelimit_headers,
    refusal_error,
    scopes,
)
from corral.gateway.routes import ModelRoute
from corral.principals import Principal

log = logging.getLogger("corral.gateway.quotas")


class LimitBook:
    """Limits of every key and team in memory (refreshed from the store), over the defaults."""

    def __init__(self, key_defaults: Limits, team_defaults: Limits) -> None:
        self._key_defaults = key_defaults
        self._team_defaults = team_defaults
        self._keys: dict[str, Limits] = {}
        self._teams: dict[str, Limits] = {}
        self._scopes: dict[tuple[str, str | None], tuple[Scope, ...] | None] = {}

    def replace(self, keys: dict[str, Limits], teams: dict[str, Limits]) -> None:
        """Swap in the limits read from the store (each over its defaults)."""
        self._keys = {k: v.over(self._key_defaults) for k, v in keys.items()}
        self._teams = {k: v.over(self._team_defaults) for k, v in teams.items()}
        self._scopes = {}

    def apply(self, keys: dict[str, Limits | None], teams: dict[str, Limits | None]) -> None:
        """Apply changed limits (None: back to the defaults); cached scopes are rebuilt."""
        for changed, book, defaults in (
            (keys, self._keys, self._key_defaults),
            (teams, self._teams, self._team_defaults),
        ):
            for holder, limits in changed.items():
                if limits is None:
                    book.pop(holder, None)
                else:
                    book[holder] = limits.over(defaults)
        if keys or teams:
            self._scopes = {}

    def scopes(self, key_id: str, team_id: str | None) -> tuple[Scope, ...] | None:
        """What a request of this key counts against; None when nothing limits it. Built once
        per key and kept until the limits change (a dict lookup on the request path)."""
        try:
            return self._scopes[(key_id, team_id)]
        except KeyError:
            pass
        key_limits = self.key(key_id)
        team_limits = self.team(team_id) if team_id else None
        unlimited = key_limits == _UNLIMITED and team_limits in (None, _UNLIMITED)
        found = None if unlimited else scopes(key_id, key_limits, team_id, team_limits)
        if len(self._scopes) >= _MAX_CACHED_SCOPES:
            self._scopes.clear()
        self._scopes[(key_id, team_id)] = found
        return found

    def key(self, key_id: str) -> Limits:
        return self._keys.get(key_id, self._key_defaults)

    def team(self, team_id: str) -> Limits:
        return self._teams.get(team_id, self._team_defaults)


_UNLIMITED = Limits()
_MAX_CACHED_SCOPES = 100_000


class Quotas:
    """Reserves, settles and releases through the Counters port."""

    def __init__(
        self, counters: Counters, book: LimitBook, clock: Clock, *, owner: str = ""
    ) -> None:
        self._counters = counters
        self._book = book
        self._clock = clock
        self._owner = owner
        self._period = month_window(clock.now())

    @property
    def counters(self) -> Counters:
        """The counters it admits on (for the reconcilers)."""
        return self._counters

    def _month(self, now: float) -> BudgetPeriod:
        if not self._period.starts_at <= now < self._period.resets_at:
            self._period = month_window(now)
        return self._period

    async def admit(
        self,
        principal: Principal,
        call: ApiCall,
        route: ModelRoute,
        request_id: str,
        headers: Headers,
    ) -> Reservation | None:
        """Reserve what the call may use, adding OpenAI's rate-limit headers to ``headers``;
        RateLimited (429) when a limit or budget would be exceeded, Overloaded (503) when the
        counters cannot decide now (busy, or Redis down; see ``counters.failopen``). None when
        unlimited."""
        request_scopes = self._book.scopes(principal.key_id, principal.team_id)
        if request_scopes is None:
            return None
        now = self._clock.now()
        request = admission_request(
            request_scopes=request_scopes,
            body=call.body,
            max_tokens=call.max_tokens,
            model=route.spec,
            completes=call.kind is not CallKind.EMBEDDINGS,
            now=now,
            request_id=request_id,
            period=self._month(now),
            user_id=principal.user_id,
            owner=self._owner,
        )
        try:
            decision = await self._counters.reserve(request, now)
        except TemporaryError as exc:
            raise Overloaded(exc.message, retry_after=math.ceil(exc.delay)) from exc
        headers += [(k.encode(), v.encode()) for k, v in ratelimit_headers(decision)]
        if isinstance(decision, Refused):
            raise refusal_error(decision, now, principal.team_name)
        return decision.reservation

    async def settle(
        self, reservation: Reservation, route: ModelRoute, prompt: int, completion: int
    ) -> None:
        """Replace the reservation by what the request really used."""
        cost = cost_micros(prompt, completion, route.spec.pricing)
        await self.settle_as(Settlement(reservation, prompt + completion, cost))

    async def settle_as(self, settlement: Settlement) -> None:
        """Settle as ``settlement`` says (its cost is the one the ledger records): release a
        request that used nothing."""
        if settlement.tokens or settlement.cost_micros:
            try:
                await self._counters.settle(
                    settlement.reservation,
                    settlement.tokens,
                    settlement.cost_micros,
                    self._clock.now(),
                )
            except TemporaryError as exc:
                # Held until it expires into the reconciler; the usage is in the ledger.
                log.warning("quotas: could not settle a reservation (%s)", exc.message)
        else:
            await self.release(settlement.reservation)

    async def release(self, reservation: Reservation) -> None:
        """Give everything back: the request never reached an engine."""
        try:
            await self._counters.release(reservation, self._clock.now())
        except TemporaryError as exc:
            log.warning("quotas: could not release a reservation (%s)", exc.message)

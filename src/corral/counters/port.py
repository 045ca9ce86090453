"""The Counters port: what admission asks of the rate-limit and budget counters, and its answers."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Literal, Protocol

from corral.counters.limits import Limits
from corral.errors import TemporaryError

LimitName = Literal["requests", "tokens", "concurrent", "budget"]
RefusalReason = Literal["rate_limit", "budget", "concurrency"]
ScopeKind = Literal["key", "team"]


@dataclass(frozen=True, slots=True)
class Scope:
    """One holder of limits a request counts against: its API key, its team."""

    kind: ScopeKind
    id: str
    limits: Limits
    name: str = field(init=False, compare=False)
    """The counters' name for this scope, e.g. ``team:t-42``."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "name", f"{self.kind}:{self.id}")


@dataclass(frozen=True, slots=True)
class BudgetPeriod:
    """The calendar month a request's cost counts in (see ``quotas.month_window``)."""

    key: str
    """``YYYY-MM`` in UTC."""
    starts_at: float
    resets_at: float


@dataclass(frozen=True, slots=True)
class AdmissionRequest:
    """Everything the counters need to admit one request: who, how big, how costly, and when."""

    scopes: tuple[Scope, ...]
    tokens: int
    """Tokens to reserve: the prompt estimate plus the completion allowance."""
    cost_micros: int
    """Worst-case cost in micro-dollars (1e-6 USD)."""
    period: BudgetPeriod
    ttl: float = 900.0
    """Seconds after which an unsettled reservation counts as left behind by a crashed gateway."""
    request_id: str = ""
    model: str = ""
    prompt_tokens: int = 0
    """The prompt estimate within ``tokens`` (the rest is the completion allowance)."""
    user_id: str | None = None
    owner: str = ""
    """The gateway process that admits it (host, pid, boot id): a process that finds the owner
    dead settles its reservations at once instead of waiting for them to expire."""


@dataclass(frozen=True, slots=True)
class ScopeCharge:
    """What a reservation took from one scope, so settlement gives back exactly that."""

    name: str
    tpm: int
    """The tokens-per-minute limit in force at admission; 0 when tokens were not limited."""
    concurrent: bool
    """Whether the reservation holds one of the scope's concurrent-request slots."""


@dataclass(frozen=True, slots=True)
class Reservation:
    """An admitted request's hold on tokens, budget and a concurrency slot, until settled."""

    id: str
    backend: str
    charges: tuple[ScopeCharge, ...]
    tokens: int
    cost_micros: int
    period: str
    expires_at: float
    request_id: str = ""
    model: str = ""
    prompt_tokens: int = 0
    user_id: str | None = None
    admitted_at: float = 0.0
    """Together with the fields above, what a reconciler needs to bill a request whose
    gateway died before settling it (see ``corral.gateway.policies.lost_requests``)."""
    owner: str = ""
    """The gateway process that made it ("" when unknown: made before owners were kept)."""

    @classmethod
    def of(cls, request: AdmissionRequest, id: str, backend: str, now: float) -> Reservation:
        """The reservation that admitting ``request`` at ``now`` makes."""
        return cls(
            id=id,
            backend=backend,
            charges=charges_for(request),
            tokens=request.tokens,
            cost_micros=request.cost_micros,
            period=request.period.key,
            expires_at=now + request.ttl,
            request_id=request.request_id,
            model=request.model,
            prompt_tokens=request.prompt_tokens,
            user_id=request.user_id,
            admitted_at=now,
            owner=request.owner,
        )

    def scope_id(self, kind: ScopeKind) -> str | None:
        """The id of the ``kind`` scope this reservation charged, e.g. its key's or team's."""
        prefix = f"{kind}:"
        for charge in self.charges:
            if charge.name.startswith(prefix):
                return charge.name[len(prefix) :]
        return None

    def to_json(self) -> str:
        """The reservation as stored by a shared backend (the backend name is not stored)."""
        return json.dumps(
            {
                "id": self.id,
                "charges": [[c.name, c.tpm, int(c.concurrent)] for c in self.charges],
                "tokens": self.tokens,
                "cost": self.cost_micros,
                "period": self.period,
                "expires_at": self.expires_at,
                "request_id": self.request_id,
                "model": self.model,
                "prompt": self.prompt_tokens,
                "user": self.user_id,
                "at": self.admitted_at,
                "owner": self.owner,
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, raw: str | bytes, backend: str) -> Reservation:
        """A reservation read back from ``to_json``."""
        data = json.loads(raw)
        return cls(
            id=data["id"],
            backend=backend,
            charges=tuple(ScopeCharge(n, int(t), bool(c)) for n, t, c in data["charges"]),
            tokens=int(data["tokens"]),
            cost_micros=int(data["cost"]),
            period=data["period"],
            expires_at=float(data["expires_at"]),
            request_id=data["request_id"],
            model=data["model"],
            # Reservations stored before these fields existed read as unknown.
            prompt_tokens=int(data.get("prompt", 0)),
            user_id=data.get("user"),
            admitted_at=float(data.get("at", 0.0)),
            owner=str(data.get("owner", "")),
        )


def charges_for(request: AdmissionRequest) -> tuple[ScopeCharge, ...]:
    """What admitting ``request`` takes from each scope, as settlement must give it back."""
    return tuple(
        ScopeCharge(s.name, s.limits.tpm or 0, s.limits.max_concurrent is not None)
        for s in request.scopes
    )


@dataclass(frozen=True, slots=True)
class RateWindow:
    """One rate limit as OpenAI's ``x-ratelimit-*`` headers show it."""

    limit: int
    remaining: int
    reset: float
    """Seconds until the limit is back to its full allowance."""


@dataclass(frozen=True, slots=True)
class Spend:
    """A scope's month so far, in micro-dollars: settled spend and holds of requests in flight."""

    spent_micros: int
    held_micros: int


@dataclass(frozen=True, slots=True)
class Admitted:
    """The request may go ahead; settle or release ``reservation`` when it ends."""

    reservation: Reservation
    requests: RateWindow | None
    """The tightest requests-per-minute limit after this request, or None when there is none."""
    tokens: RateWindow | None
    spends: tuple[Spend, ...] = ()
    """Each scope's month after this decision, in the request's scope order (empty: unknown)."""


@dataclass(frozen=True, slots=True)
class Refused:
    """The request is over a limit; nothing was reserved."""

    reason: RefusalReason
    limit: LimitName
    scope: Scope
    retry_after: float | None
    """Seconds until the request could pass; None when waiting will not help (too large)."""
    allowed: int
    """The limit: requests or tokens per minute, requests in flight, or budget micro-dollars."""
    used: int
    """How much of it is taken: in the window, in flight, or spent plus held this month."""
    needed: int
    """What this request asked for in the same unit."""
    resets_at: float | None
    """For a budget refusal, when the month ends (epoch seconds)."""
    requests: RateWindow | None
    tokens: RateWindow | None
    spends: tuple[Spend, ...] = ()
    """Each scope's month as the counters saw it, in the request's scope order (empty: unknown)."""


class CountersBusy(TemporaryError):
    """The shared counters are up but had no connection free in time: back-pressure (503)."""


class CountersUnreachable(TemporaryError):
    """The shared counters did not answer: connection refused or reset, or a timeout."""


class Counters(Protocol):
    """Atomic admission counters. Every method is safe under any number of concurrent callers.

    ``now`` is wall-clock epoch seconds from the caller's Clock, so tests drive time. Backends
    raise ``TemporaryError`` and nothing else on purpose: ``CountersUnreachable`` when their
    storage cannot be reached, ``CountersBusy`` when it is up but every connection stays busy.
    """

    async def reserve(self, request: AdmissionRequest, now: float) -> Admitted | Refused:
        """Check every limit of every scope and, only if all pass, take them all at once."""
        ...

    async def settle(
        self, reservation: Reservation, tokens: int, cost_micros: int, now: float
    ) -> bool:
        """Replace the reservation by actual use; False when it was already settled."""
        ...

    async def release(self, reservation: Reservation, now: float) -> bool:
        """Give back tokens, budget and slot of a request that never reached an engine."""
        ...

    async def expired_reservations(self, now: float) -> list[Reservation]:
        """Reservations past their expiry: left behind by a gateway that crashed or hung."""
        ...

    async def reconcile(self, now: float) -> list[Reservation]:
        """Settle every expired reservation at its reserved (worst-case) size; return them."""
        ...

    async def seed_spend(self, scope: str, period: str, spent_micros: int) -> None:
        """Raise month ``period``'s settled spend to at least ``spent_micros`` (from the ledger)."""
        ...

    async def add_spend(self, scope: str, period: str, micros: int) -> None:
        """Add spend settled elsewhere (by per-process counters during a Redis outage)."""
        ...

    async def spend(self, scope: str, period: str) -> Spend:
        """Month ``period``'s spend and holds for ``scope`` as the counters see them."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...

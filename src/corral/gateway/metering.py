"""What the gateway records about each finished request, and the port that takes the records."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from corral.counters.port import Reservation


@dataclass(frozen=True, slots=True)
class UsageEvent:
    """One finished API call: exactly one per request id."""

    request_id: str
    time: float
    key_id: str
    team_id: str | None
    user_id: str | None
    model: str
    endpoint: str
    kind: str
    status: int
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float
    estimated: bool
    latency: float
    time_to_first_token: float | None
    outcome: str  # ok | client_error | upstream_error | timeout | client_gone | refused | shutdown


@dataclass(frozen=True, slots=True)
class Settlement:
    """How a request's reservation is settled, kept beside its record so that, if the process
    dies before settling, whoever adopts its journal settles it the same way."""

    reservation: Reservation
    tokens: int
    cost_micros: int


class Meter(Protocol):
    """Takes usage events off the request path; must never block or raise."""

    def record(self, event: UsageEvent, settlement: Settlement | None = None) -> None: ...


class MeterChain:
    """Hands each event to several meters in order."""

    def __init__(self, *meters: Meter) -> None:
        self._meters = meters

    def record(self, event: UsageEvent, settlement: Settlement | None = None) -> None:
        for meter in self._meters:
            meter.record(event, settlement)

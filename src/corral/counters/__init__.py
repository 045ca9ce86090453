"""The Counters port: rate-limit and budget counters, in-process or in Redis."""

from corral.counters.limits import Limits
from corral.counters.local import LocalCounters
from corral.counters.port import (
    AdmissionRequest,
    Admitted,
    BudgetPeriod,
    Counters,
    LimitName,
    RateWindow,
    Refused,
    Reservation,
    Scope,
    Spend,
)

__all__ = [
    "AdmissionRequest",
    "Admitted",
    "BudgetPeriod",
    "Counters",
    "LimitName",
    "Limits",
    "LocalCounters",
    "RateWindow",
    "Refused",
    "Reservation",
    "Scope",
    "Spend",
]

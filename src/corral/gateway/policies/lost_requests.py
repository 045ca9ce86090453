"""Requests a gateway admitted and never finished (it crashed): the ledger record to bill them.

When a gateway dies mid-request, its reservation outlives it (in Redis; in-process counters die
with the process) and the reconciler settles it once it expires. The request still gets exactly
one ledger record, made here from what the reservation kept:

- tokens: the prompt estimate as prompt tokens and the whole completion allowance as completion
  tokens, at the reserved (worst-case) cost. That is exactly what the counters settle for an
  expired reservation, so the ledger, team budgets and a later re-seed from the ledger agree;
  nothing shows what the engine really produced, and a worst case keeps budgets conservative.
- ``estimated`` is true, ``outcome`` is ``gateway_lost`` and ``status`` is 0 (no HTTP status was
  ever recorded); endpoint and kind are unknown.
- The store keeps one record per request id: if the gateway wrote the real record before it
  died, that record stays; if the real record arrives later (from a disk spool replayed after
  the restart), it replaces this estimate.
"""

from __future__ import annotations

from corral.counters.limits import MICROS_PER_USD
from corral.counters.port import Reservation
from corral.gateway.metering import UsageEvent

LOST_OUTCOME = "gateway_lost"
LOST_STATUS = 0
"""HTTP status of a lost request's record: none was sent, as far as anyone knows."""
UNKNOWN = "unknown"


def lost_request_record(reservation: Reservation) -> UsageEvent:
    """The estimated ledger record of the request that left ``reservation`` behind."""
    prompt = min(reservation.prompt_tokens, reservation.tokens)
    return UsageEvent(
        request_id=reservation.request_id,
        time=reservation.admitted_at or reservation.expires_at,
        key_id=reservation.scope_id("key") or UNKNOWN,
        team_id=reservation.scope_id("team"),
        user_id=reservation.user_id,
        model=reservation.model or UNKNOWN,
        endpoint=UNKNOWN,
        kind=UNKNOWN,
        status=LOST_STATUS,
        prompt_tokens=prompt,
        completion_tokens=reservation.tokens - prompt,
        cost_usd=reservation.cost_micros / MICROS_PER_USD,
        estimated=True,
        latency=0.0,
        time_to_first_token=None,
        outcome=LOST_OUTCOME,
    )

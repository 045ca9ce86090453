"""Test data for metering and quotas: a usage record with defaults, a request to reserve."""

from __future__ import annotations

import dataclasses
from typing import Any

from corral.catalog import FakeEngineConfig, ModelSpec, Pricing
from corral.counters import Limits
from corral.counters.port import AdmissionRequest
from corral.gateway.metering import UsageEvent
from corral.gateway.policies import quotas

_DEFAULT = UsageEvent(
    request_id="req_0",
    time=1.0,
    key_id="key_1",
    team_id="team_1",
    user_id=None,
    model="m",
    endpoint="http://e",
    kind="chat/completions",
    status=200,
    prompt_tokens=3,
    completion_tokens=5,
    cost_usd=0.0,
    estimated=False,
    latency=0.1,
    time_to_first_token=0.01,
    outcome="ok",
)


def usage_event(**changes: Any) -> UsageEvent:
    """A finished request's record: a plain successful one, with ``changes``."""
    return dataclasses.replace(_DEFAULT, **changes)


PRICED_MODEL = ModelSpec(
    name="m", engine=FakeEngineConfig(), pricing=Pricing(input_per_1m=1.0, output_per_1m=2.0)
)
# A 104-token prompt estimate and max_tokens 896: 1,000 tokens held at 104 × $1 + 896 × $2 per
# 1M tokens = 1,896 micro-dollars.
PROMPT = {"messages": [{"role": "user", "content": "x" * 396}]}


def costly_request(request_id: str, now: float) -> AdmissionRequest:
    """Key k1 (100 rpm) of team t1 ($1 a month) asks for 1,000 tokens worth 1,896 micro-$."""
    return quotas.admission_request(
        request_scopes=quotas.scopes("k1", Limits(rpm=100), "t1", Limits(monthly_budget_usd=1)),
        body=PROMPT,
        max_tokens=896,
        model=PRICED_MODEL,
        completes=True,
        now=now,
        request_id=request_id,
        user_id="u1",
    )

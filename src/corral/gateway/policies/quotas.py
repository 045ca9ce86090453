"""Quota policy: how big and how costly a request is, the budget month, headers and refusals."""

from __future__ import annotations

import calendar
import functools
import math
from collections.abc import Mapping
from datetime import UTC, datetime
from fractions import Fraction
from typing import Any

from corral.catalog import ModelSpec, Pricing
from corral.counters.limits import MICROS_PER_USD, Limits
from corral.counters.port import (
    AdmissionRequest,
    Admitted,
    BudgetPeriod,
    RateWindow,
    Refused,
    Scope,
)
from corral.errors import RateLimited

CHARS_PER_TOKEN = 4
"""Prompt estimate: one token per four characters of text, rounded up (OpenAI's rule of thumb)."""
TOKENS_PER_MESSAGE = 4
"""Chat framing each message adds (role markers), as OpenAI's counting guide reckons it."""
RESERVATION_MARGIN_S = 60.0
"""A reservation outlives the model's total timeout by this much before it counts as orphaned."""
_NOT_TEXT = frozenset({"image_url", "input_audio", "audio", "file"})
_PROMPT_FIELDS = ("messages", "prompt", "input", "tools", "functions")


def prompt_estimate(body: Mapping[str, Any]) -> int:
    """Tokens the prompt will take: text characters / 4 rounded up, token arrays counted as is.

    Images, audio and files are not text and are not counted (a base64 image would otherwise
    reserve hundreds of thousands of tokens); the settlement charges what the engine reports.
    """
    counts = [0, 0]  # text characters, literal tokens
    for name in _PROMPT_FIELDS:
        value = body.get(name)
        if value is not None:
            _measure(value, counts)
    messages = body.get("messages")
    framing = TOKENS_PER_MESSAGE * len(messages) if isinstance(messages, list) else 0
    return -(-counts[0] // CHARS_PER_TOKEN) + counts[1] + framing


def _measure(value: Any, counts: list[int]) -> None:
    """Add a JSON value's text characters and literal tokens to ``counts``."""
    if isinstance(value, str):
        counts[0] += len(value)
    elif isinstance(value, Mapping):
        for k, v in value.items():
            if k not in _NOT_TEXT:
                _measure(v, counts)
    elif isinstance(value, list):
        if value and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            counts[1] += len(value)
        else:
            for v in value:
                _measure(v, counts)


def completion_allowance(max_tokens: int | None, model: ModelSpec, choices: int = 1) -> int:
    """Completion tokens to reserve: ``max_tokens`` (else the model's default) for each choice.

    Capped by the model's context length when the catalog knows it, since no engine can
    produce more; not capped below what the client asked for, so the reservation stays a true
    worst case and a budget cannot be overspent by a request that uses all of it.
    """
    allowance = max_tokens if max_tokens is not None else model.max_tokens_default
    if model.context_length is not None:
        allowance = min(allowance, model.context_length)
    return max(0, allowance) * max(1, choices)


def cost_micros(prompt_tokens: int, completion_tokens: int, pricing: Pricing) -> int:
    """Cost in micro-dollars, rounded up: USD per 1M tokens is exactly micro-USD per token."""
    n_in, d_in = _ratio(pricing.input_per_1m)
    n_out, d_out = _ratio(pricing.output_per_1m)
    cost = prompt_tokens * n_in * d_out + completion_tokens * n_out * d_in
    return -(-cost // (d_in * d_out))


@functools.lru_cache(maxsize=4096)
def _ratio(price: float) -> tuple[int, int]:
    """A price as written (``0.1`` is one tenth, not the nearest binary float), as integers."""
    exact = Fraction(str(price))
    return exact.numerator, exact.denominator


def month_window(now: float) -> BudgetPeriod:
    """The UTC calendar month containing ``now``: its ``YYYY-MM`` key, start and reset time."""
    moment = datetime.fromtimestamp(now, UTC)
    start = datetime(moment.year, moment.month, 1, tzinfo=UTC)
    days = calendar.monthrange(moment.year, moment.month)[1]
    reset = start.timestamp() + days * 86400
    return BudgetPeriod(key=f"{moment:%Y-%m}", starts_at=start.timestamp(), resets_at=reset)


def scopes(
    key_id: str, key_limits: Limits, team_id: str | None, team_limits: Limits | None
) -> tuple[Scope, ...]:
    """The scopes a request counts against: its key, and its team when it has one."""
    own = Scope(kind="key", id=key_id, limits=key_limits)
    if team_id is None:
        return (own,)
    return (own, Scope(kind="team", id=team_id, limits=team_limits or Limits()))


def admission_request(
    *,
    request_scopes: tuple[Scope, ...],
    body: Mapping[str, Any],
    max_tokens: int | None,
    model: ModelSpec,
    completes: bool,
    now: float,
    request_id: str = "",
    period: BudgetPeriod | None = None,
    user_id: str | None = None,
    owner: str = "",
) -> AdmissionRequest:
    """What to reserve for one API call; ``completes`` is False for embeddings. ``period``:
    the month containing ``now`` when the caller already has it (saves recomputing it)."""
    prompt = prompt_estimate(body)
    choices = body.get("n")
    count = choices if isinstance(choices, int) and not isinstance(choices, bool) else 1
    completion = completion_allowance(max_tokens, model, count) if completes else 0
    return AdmissionRequest(
        scopes=request_scopes,
        tokens=prompt + completion,
        cost_micros=cost_micros(prompt, completion, model.pricing),
        period=period if period is not None else month_window(now),
        ttl=model.timeouts.total + RESERVATION_MARGIN_S,
        request_id=request_id,
        model=model.name,
        prompt_tokens=prompt,
        user_id=user_id,
        owner=owner,
    )


def format_reset(seconds: float) -> str:
    """A duration as OpenAI's reset headers write it: ``20ms``, ``1s``, ``1.5s``, ``6m0s``."""
    millis = max(0, math.ceil(seconds * 1000 - 1e-6))
    if millis < 1000:
        return f"{millis}ms"
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs = f"{rest / 1000:.3f}".rstrip("0").rstrip(".")
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"


def ratelimit_headers(decision: Admitted | Refused) -> list[tuple[str, str]]:
    """OpenAI's ``x-ratelimit-*`` headers for the tightest limits; none for unlimited kinds."""
    headers: list[tuple[str, str]] = []
    for kind, window in (("requests", decision.requests), ("tokens", decision.tokens)):
        if window is not None:
            headers += _window_headers(kind, window)
    return headers


def _window_headers(kind: str, window: RateWindow) -> list[tuple[str, str]]:
    return [
        (f"x-ratelimit-limit-{kind}", str(window.limit)),
        (f"x-ratelimit-remaining-{kind}", str(window.remaining)),
        (f"x-ratelimit-reset-{kind}", format_reset(window.reset)),
    ]


def refusal_error(refused: Refused, now: float, team_name: str | None = None) -> RateLimited:
    """The 429 a client gets: what was exceeded, by how much, when to retry and how to fix it.
    ``team_name``: the caller's team, named beside its id (people know teams by name)."""
    who = _who(refused, team_name)
    if refused.limit == "budget":
        return RateLimited(
            _budget_message(refused, now, who),
            code="budget_exceeded",
            retry_after=refused.retry_after,
        )
    return RateLimited(
        _rate_message(refused, who), code="rate_limit_exceeded", retry_after=refused.retry_after
    )


def _who(refused: Refused, team_name: str | None) -> str:
    scope = refused.scope
    if scope.kind != "team":
        return f"API key {scope.id!r}"
    if team_name and team_name != scope.id:
        return f"team {team_name!r} ({scope.id})"
    return f"team {scope.id!r}"


def rough_duration(seconds: float) -> str:
    """A wait as people say it: ``26 days 9 h``, ``3 h 20 min``, ``4 min``, ``12 s``."""
    whole = max(0, round(seconds))
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days} day{'s' if days != 1 else ''}" + (f" {hours} h" if hours else "")
    if hours:
        return f"{hours} h" + (f" {minutes} min" if minutes else "")
    return f"{minutes} min" if minutes else f"{secs} s"


def _usd(micros: int) -> str:
    return f"${micros / MICROS_PER_USD:,.2f}" if micros >= 10_000 else f"${micros / 1e6:.6f}"


def _budget_message(refused: Refused, now: float, who: str) -> str:
    resets_at = refused.resets_at if refused.resets_at is not None else now
    when = datetime.fromtimestamp(resets_at, UTC).strftime("%Y-%m-%d %H:%M UTC")
    whose = "the team's" if refused.scope.kind == "team" else "this key's"
    return (
        f"The monthly budget of {who} cannot cover this request: {_usd(refused.used)} "
        f"of {_usd(refused.allowed)} is spent or held by requests in flight, and this request "
        f"could cost up to {_usd(refused.needed)} (lower max_tokens to reserve less). The budget "
        f"resets on {when} (in {rough_duration(resets_at - now)}). To go on before then, ask "
        f"your team-admin to raise {whose} monthly budget (portal: Team page, or "
        "`corral budget set`)."
    )


def _rate_message(refused: Refused, who: str) -> str:
    if refused.limit == "concurrent":
        return (
            f"Too many concurrent requests for {who}: {refused.used} in flight, limit "
            f"{refused.allowed}. Retry when one of them finishes."
        )
    unit = "requests" if refused.limit == "requests" else "tokens"
    if refused.retry_after is None:
        return (
            f"Request too large for {who}: it reserves {refused.needed} tokens (prompt estimate "
            f"plus max_tokens) but the limit is {refused.allowed} tokens per minute. Lower "
            "max_tokens or shorten the prompt."
        )
    advice = " or lower max_tokens" if unit == "tokens" else ""
    return (
        f"Rate limit reached for {who}: {refused.allowed} {unit} per minute, {refused.used} "
        f"used, this request needs {refused.needed}. Retry after "
        f"{format_reset(refused.retry_after)}{advice}."
    )

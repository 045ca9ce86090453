"""Quota policy: reservation sizes, worst-case cost, the budget month, headers and refusals."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from corral.catalog import FakeEngineConfig, ModelSpec, Pricing
from corral.counters import Admitted, Limits, RateWindow, Refused, Reservation, Scope
from corral.gateway.policies import quotas

MODEL = ModelSpec(
    name="m",
    engine=FakeEngineConfig(),
    pricing=Pricing(input_per_1m=0.15, output_per_1m=0.6),
    max_tokens_default=1000,
)


def ts(*parts: int) -> float:
    return datetime(*parts, tzinfo=UTC).timestamp()


def test_prompt_estimate_counts_text_by_four_characters_rounded_up() -> None:
    body = {"messages": [{"role": "user", "content": "x" * 9}]}
    # "user" (4) + 9 characters = 13 → 4 tokens, plus 4 for the message's framing
    assert quotas.prompt_estimate(body) == 8


def test_prompt_estimate_skips_images_and_counts_token_arrays() -> None:
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64," + "A" * 100_000}}
    body = {"messages": [{"role": "user", "content": [{"type": "text", "text": "abcd"}, image]}]}
    assert quotas.prompt_estimate(body) < 20
    assert quotas.prompt_estimate({"input": [[1, 2, 3], [4, 5]]}) == 5
    assert quotas.prompt_estimate({"prompt": "abcdefgh"}) == 2


def test_completion_allowance_is_max_tokens_else_the_model_default() -> None:
    assert quotas.completion_allowance(None, MODEL) == 1000
    assert quotas.completion_allowance(50, MODEL) == 50
    assert quotas.completion_allowance(5000, MODEL) == 5000
    assert quotas.completion_allowance(50, MODEL, choices=3) == 150
    capped = MODEL.model_copy(update={"context_length": 2048})
    assert quotas.completion_allowance(100_000, capped) == 2048


def test_cost_is_exact_micro_dollars_rounded_up() -> None:
    pricing = Pricing(input_per_1m=0.15, output_per_1m=0.6)
    assert quotas.cost_micros(1000, 0, pricing) == 150  # no float drift to 151
    assert quotas.cost_micros(1000, 1000, pricing) == 750
    assert quotas.cost_micros(1, 0, pricing) == 1
    assert quotas.cost_micros(10, 10, Pricing()) == 0


def test_admission_request_reserves_prompt_plus_allowance_at_worst_case_cost() -> None:
    scopes = quotas.scopes("k1", Limits(rpm=5), "t1", None)
    body = {"messages": [{"role": "user", "content": "x" * 396}], "max_tokens": 100}
    req = quotas.admission_request(
        request_scopes=scopes,
        body=body,
        max_tokens=100,
        model=MODEL,
        completes=True,
        now=ts(2024, 2, 10),
        request_id="r1",
    )
    assert req.tokens == 100 + 4 + 100
    assert req.cost_micros == quotas.cost_micros(104, 100, MODEL.pricing)
    assert req.period.key == "2024-02"
    assert req.ttl == MODEL.timeouts.total + 60
    assert [s.name for s in req.scopes] == ["key:k1", "team:t1"]
    embedding = quotas.admission_request(
        request_scopes=scopes,
        body={"input": "abcd"},
        max_tokens=None,
        model=MODEL,
        completes=False,
        now=0.0,
    )
    assert embedding.tokens == 1


@pytest.mark.parametrize(
    ("now", "key", "start", "reset"),
    [
        (ts(2024, 2, 29, 23, 59), "2024-02", ts(2024, 2, 1), ts(2024, 3, 1)),
        (ts(2023, 12, 31, 23, 59, 59), "2023-12", ts(2023, 12, 1), ts(2024, 1, 1)),
        (ts(2024, 1, 1), "2024-01", ts(2024, 1, 1), ts(2024, 2, 1)),
    ],
)
def test_month_window_is_the_utc_calendar_month(
    now: float, key: str, start: float, reset: float
) -> None:
    period = quotas.month_window(now)
    assert (period.key, period.starts_at, period.resets_at) == (key, start, reset)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0ms"),
        (0.0174, "18ms"),
        (1, "1s"),
        (1.5, "1.5s"),
        (59.9, "59.9s"),
        (59.9994, "1m0s"),  # rounded up: a client never retries early
        (360, "6m0s"),
        (61.25, "1m1.25s"),
        (3723, "1h2m3s"),
    ],
)
def test_reset_durations_read_like_openais(seconds: float, text: str) -> None:
    assert quotas.format_reset(seconds) == text


def test_headers_show_the_tightest_windows_and_omit_unlimited_kinds() -> None:
    reservation = Reservation("r", "local", (), 1, 0, "2024-02", 0.0)
    admitted = Admitted(reservation, RateWindow(60, 59, 1.0), None)
    assert quotas.ratelimit_headers(admitted) == [
        ("x-ratelimit-limit-requests", "60"),
        ("x-ratelimit-remaining-requests", "59"),
        ("x-ratelimit-reset-requests", "1s"),
    ]


def refusal(**changes: object) -> Refused:
    base: dict[str, object] = {
        "reason": "rate_limit",
        "limit": "requests",
        "scope": Scope("key", "k1", Limits()),
        "retry_after": 2.0,
        "allowed": 60,
        "used": 60,
        "needed": 1,
        "resets_at": None,
        "requests": RateWindow(60, 0, 60.0),
        "tokens": None,
    }
    return Refused(**{**base, **changes})  # type: ignore[arg-type]


def test_budget_refusal_says_when_it_resets_and_who_can_raise_it() -> None:
    now = ts(2024, 2, 27)
    error = quotas.refusal_error(
        refusal(
            reason="budget",
            limit="budget",
            scope=Scope("team", "ml", Limits()),
            allowed=500_000_000,
            used=499_990_000,
            needed=20_000,
            resets_at=ts(2024, 3, 1),
            retry_after=ts(2024, 3, 1) - now,
        ),
        now - 0.994,
        team_name="machine-learning",
    )
    assert error.status == 429
    assert error.code == "budget_exceeded"
    assert "team 'machine-learning' (ml)" in error.message
    assert "$499.99 of $500.00" in error.message
    assert "up to $0.02" in error.message
    assert "2024-03-01 00:00 UTC" in error.message
    assert "(in 3 days)" in error.message  # rounded, not 72h0m0.994s
    assert "ask your team-admin to raise the team's monthly budget" in error.message


@pytest.mark.parametrize(
    ("seconds", "said"),
    [
        (2_282_077.994, "26 days 9 h"),
        (86_400, "1 day"),
        (12_000.4, "3 h 20 min"),
        (240.2, "4 min"),
        (12.4, "12 s"),
    ],
)
def test_waits_are_rounded_as_people_say_them(seconds: float, said: str) -> None:
    assert quotas.rough_duration(seconds) == said


def test_rate_refusals_name_the_limit_the_wait_and_the_fix() -> None:
    requests = quotas.refusal_error(refusal(), 0.0)
    assert requests.code == "rate_limit_exceeded"
    assert requests.retry_after == 2.0
    assert "60 requests per minute" in requests.message
    assert "Retry after 2s" in requests.message
    tokens = quotas.refusal_error(refusal(limit="tokens", retry_after=None, needed=9000), 0.0)
    assert "Request too large" in tokens.message
    assert "max_tokens" in tokens.message
    slots = quotas.refusal_error(
        refusal(reason="concurrency", limit="concurrent", allowed=4, used=4), 0.0
    )
    assert "4 in flight" in slots.message
    assert slots.code == "rate_limit_exceeded"

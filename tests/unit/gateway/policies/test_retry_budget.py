"""The retry budget: a floor for quiet models, a ratio cap under load, a sliding window."""

from __future__ import annotations

import pytest

from corral.gateway.policies.retry_budget import RetryBudget


def retries_allowed(budget: RetryBudget, now: float, attempts: int = 10_000) -> int:
    return sum(budget.try_retry(now) for _ in range(attempts))


def test_a_quiet_model_gets_the_floor() -> None:
    budget = RetryBudget(ratio=0.2, min_per_second=1.0, window_s=10)
    assert retries_allowed(budget, now=0.0) == 10


def test_under_load_retries_stay_within_the_ratio() -> None:
    budget = RetryBudget(ratio=0.2, min_per_second=0.0, window_s=10)
    for second in range(10):
        for _ in range(100):
            budget.record_request(float(second))
    assert retries_allowed(budget, now=9.5) == 200  # 20 % of 1000 first attempts
    assert budget.totals(9.5) == (1000, 200)


def test_spent_budget_refills_as_the_window_slides() -> None:
    budget = RetryBudget(ratio=0.5, min_per_second=0.0, window_s=4)
    for _ in range(10):
        budget.record_request(0.0)
    assert retries_allowed(budget, 0.0) == 5
    for _ in range(10):
        budget.record_request(2.0)
    assert retries_allowed(budget, 2.0) == 5  # 20 requests allow 10, 5 already spent
    assert budget.totals(4.0) == (10, 5)  # second 0 has left the window
    assert not budget.can_retry(4.0)  # the 5 retries of second 2 use the 5 allowed
    for _ in range(10):
        budget.record_request(5.0)
    assert budget.can_retry(5.0)


def test_can_retry_does_not_spend() -> None:
    budget = RetryBudget(ratio=0.0, min_per_second=0.1, window_s=10)
    assert budget.can_retry(0.0)
    assert budget.can_retry(0.0)
    assert budget.try_retry(0.0)
    assert not budget.can_retry(0.0)


def test_a_long_idle_gap_forgets_everything() -> None:
    budget = RetryBudget(ratio=0.2, min_per_second=0.0, window_s=10)
    for _ in range(50):
        budget.record_request(3.0)
    budget.try_retry(3.0)
    assert budget.totals(1003.0) == (0, 0)


@pytest.mark.parametrize("kwargs", [{"ratio": -0.1}, {"min_per_second": -1.0}, {"window_s": 0}])
def test_config_refuses_nonsense(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="must"):
        RetryBudget(**kwargs)  # type: ignore[arg-type]

"""Budget shares while Redis is down: no process commits more than its share of what was left,
so the fleet together commits at most what was left."""

from __future__ import annotations

import pytest

from corral.counters import AdmissionRequest, BudgetPeriod, Limits, Scope, Spend
from corral.counters.port import Reservation
from corral.counters.shares import KnownSpend, OutageShares, outage_share

MONTH = BudgetPeriod(key="2023-11", starts_at=1_698_796_800.0, resets_at=1_701_388_800.0)
TEAM = Scope("team", "t1", Limits(monthly_budget_usd=0.001))  # 1,000 micro-dollars
KEY = Scope("key", "k1", Limits(rpm=100))


def request(cost: int) -> AdmissionRequest:
    return AdmissionRequest(scopes=(KEY, TEAM), tokens=10, cost_micros=cost, period=MONTH)


def admit(shares: OutageShares, cost: int, n: int) -> Reservation | None:
    wanted = request(cost)
    if shares.short(wanted) is not None:
        return None
    reservation = Reservation.of(wanted, f"r{n}", "local", 0.0)
    shares.take(wanted, reservation)
    return reservation


@pytest.mark.parametrize(
    ("budget", "known", "processes", "share"),
    [
        (1000, None, 1, 1000),  # never seen, no ledger spend: the whole budget, alone
        (1000, None, 4, 250),
        (1000, KnownSpend(spent=400, held=100), 2, 250),  # holds count as if spent
        (1000, KnownSpend(spent=900, held=0), 3, 33),  # rounded down
        (1000, KnownSpend(spent=1200, held=0), 2, 0),  # already over
    ],
)
def test_outage_share(budget: int, known: KnownSpend | None, processes: int, share: int) -> None:
    assert outage_share(budget, known, processes) == share


def test_each_process_admits_at_most_its_share_and_together_at_most_what_was_left() -> None:
    fleet = [OutageShares(processes=4) for _ in range(4)]
    for shares in fleet:  # each saw the team at 300 spent, 100 held before Redis went down
        shares.observe(request(37), [Spend(0, 0), Spend(300, 100)])
    admitted = [[r for n in range(100) if (r := admit(s, 37, n)) is not None] for s in fleet]
    assert [len(a) for a in admitted] == [4, 4, 4, 4]  # 150 each = 4 × 37 (148)
    assert sum(37 * len(a) for a in admitted) <= 1000 - 300 - 100


def test_the_ledger_raises_what_is_known_and_a_refusal_names_the_scope() -> None:
    shares = OutageShares(processes=1)
    shares.observe(request(37), [Spend(0, 0), Spend(100, 0)])
    shares.observe_ledger("team:t1", MONTH.key, 990)
    shares.observe_ledger("team:t1", MONTH.key, 500)  # lower than known: ignored
    assert shares.short(request(10)) is None
    assert shares.short(request(11)) == TEAM


def test_settlement_frees_what_a_request_did_not_use() -> None:
    shares = OutageShares(processes=1)
    shares.observe_ledger("team:t1", MONTH.key, 900)
    first = admit(shares, 60, 1)
    assert first is not None
    assert admit(shares, 60, 2) is None  # 60 held + 60 > 100 left
    shares.settle(first, 20)
    assert shares.used("team:t1", MONTH.key) == 20
    assert admit(shares, 60, 3) is not None
    shares.settle(first, 20)  # settled already: no change
    assert shares.used("team:t1", MONTH.key) == 80


def test_a_new_outage_takes_its_share_from_fresh_figures() -> None:
    shares = OutageShares(processes=2)
    shares.observe_ledger("team:t1", MONTH.key, 0)
    assert admit(shares, 500, 1) is not None
    assert admit(shares, 1, 2) is None
    shares.end_outage()
    shares.observe(request(1), [Spend(0, 0), Spend(800, 0)])
    assert admit(shares, 100, 3) is not None  # (1000 - 800) / 2
    assert admit(shares, 1, 4) is None


def test_requests_without_a_budget_or_cost_are_not_counted() -> None:
    shares = OutageShares(processes=1)
    shares.observe_ledger("team:t1", MONTH.key, 1000)
    assert shares.short(request(0)) is None
    unbudgeted = AdmissionRequest(scopes=(KEY,), tokens=10, cost_micros=50, period=MONTH)
    assert shares.short(unbudgeted) is None

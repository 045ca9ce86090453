"""The fair queue's scheduling core: order by weight and cost, bounds, deadlines, withdrawal."""

from __future__ import annotations

import pytest

from corral.gateway.policies.fair_queue import FairQueue, Popped, Pushed, RejectReason


def drain(queue: FairQueue[str], now: float = 0.0) -> list[str]:
    order = []
    while (popped := queue.pop(now)).item is not None:
        order.append(popped.item)
    return order


def test_equal_weights_alternate_between_backlogged_teams() -> None:
    queue: FairQueue[str] = FairQueue()
    for i in range(3):
        queue.push("a", 100, f"a{i}", now=0.0)
    for i in range(3):
        queue.push("b", 100, f"b{i}", now=0.0)
    assert drain(queue) == ["a0", "b0", "a1", "b1", "a2", "b2"]


def test_weights_set_the_ratio() -> None:
    queue: FairQueue[str] = FairQueue(weights={"a": 3.0})
    for i in range(9):
        queue.push("a", 10, f"a{i}", now=0.0)
        queue.push("b", 10, f"b{i}", now=0.0)
    first_eight = drain(queue)[:8]
    assert sum(item.startswith("a") for item in first_eight) == 6


def test_cost_is_tokens_not_requests() -> None:
    queue: FairQueue[str] = FairQueue()
    for i in range(2):
        queue.push("big", 400, f"big{i}", now=0.0)
    for i in range(8):
        queue.push("small", 100, f"small{i}", now=0.0)
    order = drain(queue)
    assert order.index("big1") > order.index("small3")  # four small ones per big one


def test_a_flooding_team_only_lengthens_its_own_line() -> None:
    queue: FairQueue[str] = FairQueue()
    for i in range(100):
        queue.push("noisy", 50, f"n{i}", now=0.0)
    assert queue.pop(0.0).item == "n0"
    queue.push("quiet", 50, "q0", now=1.0)
    # 99 noisy requests wait, yet the quiet team's first one is next
    assert queue.pop(1.0).item == "q0"


def test_an_idle_team_banks_no_credit() -> None:
    queue: FairQueue[str] = FairQueue()
    for i in range(10):
        queue.push("a", 10, f"a{i}", now=0.0)
    assert [queue.pop(0.0).item for _ in range(5)] == [f"a{i}" for i in range(5)]
    for i in range(4):
        queue.push("b", 10, f"b{i}", now=1.0)
    # b was idle while a was served; it is not owed five turns in a row now
    assert drain(queue, 1.0) == ["b0", "a5", "b1", "a6", "b2", "a7", "b3", "a8", "a9"]


def test_pop_reports_team_and_wait() -> None:
    queue: FairQueue[str] = FairQueue()
    queue.push("a", 1, "x", now=10.0)
    assert queue.pop(12.5) == Popped("x", "a", 2.5)
    assert queue.pop(13.0) == Popped(None)


def test_a_full_queue_refuses_the_heaviest_team() -> None:
    queue: FairQueue[str] = FairQueue(max_items=3)
    for i in range(3):
        assert queue.push("a", 10, f"a{i}", now=0.0).accepted
    assert queue.push("a", 10, "a3", now=0.0) == Pushed(False, reason=RejectReason.QUEUE_FULL)
    assert len(queue) == 3


def test_a_lighter_team_pushes_out_the_heaviest_teams_newest() -> None:
    queue: FairQueue[str] = FairQueue(max_items=3)
    for i in range(3):
        queue.push("a", 10, f"a{i}", now=0.0)
    pushed = queue.push("b", 10, "b0", now=0.0)
    assert (pushed.accepted, pushed.evicted) == (True, ("a2",))
    assert drain(queue) == ["a0", "b0", "a1"]


def test_weights_decide_who_is_heaviest() -> None:
    queue: FairQueue[str] = FairQueue(weights={"a": 4.0}, max_items=3)
    queue.push("a", 10, "a0", now=0.0)
    queue.push("a", 10, "a1", now=0.0)
    queue.push("b", 10, "b0", now=0.0)
    # a holds 20/4 = 5 weighted, b would hold 20/1 = 20: b is the heavier one
    assert queue.push("b", 10, "b1", now=0.0).reason is RejectReason.QUEUE_FULL


def test_expired_items_are_dropped_and_reported_at_pop() -> None:
    queue: FairQueue[str] = FairQueue()
    queue.push("a", 10, "late", now=0.0, deadline=5.0)
    queue.push("b", 10, "fine", now=0.0, deadline=50.0)
    assert queue.pop(6.0) == Popped("fine", "b", 6.0, expired=("late",))
    assert len(queue) == 0


def test_expire_sweeps_items_anywhere_in_line() -> None:
    queue: FairQueue[str] = FairQueue()
    queue.push("a", 10, "a0", now=0.0, deadline=100.0)
    queue.push("a", 10, "a1", now=0.0, deadline=5.0)
    queue.push("a", 10, "a2", now=0.0)
    assert queue.expire(6.0) == ("a1",)
    assert drain(queue, 6.0) == ["a0", "a2"]


def test_cancel_withdraws_and_gives_the_place_back() -> None:
    queue: FairQueue[str] = FairQueue()
    tickets = [queue.push("a", 10, f"a{i}", now=0.0).ticket for i in range(3)]
    for i in range(3):
        queue.push("b", 10, f"b{i}", now=0.0)
    assert tickets[0] is not None
    assert queue.cancel(tickets[0])
    assert not queue.cancel(tickets[0])
    assert queue.backlog("a") == 20
    # a1 and a2 move up a place: a is not charged for the request that left
    assert drain(queue) == ["a1", "b0", "a2", "b1", "b2"]


def test_withdrawing_heads_without_pops_keeps_memory_flat() -> None:
    queue: FairQueue[str] = FairQueue()
    for i in range(10_000):
        ticket = queue.push(f"team{i % 3}", 10, "x", now=float(i)).ticket
        assert ticket is not None
        queue.cancel(ticket)
    assert len(queue) == 0
    assert len(queue._heads) <= 16


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"max_items": 0}, "max_items"), ({"weights": {"a": 0.0}}, "weights")],
)
def test_config_refuses_nonsense(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        FairQueue(**kwargs)  # type: ignore[arg-type]


def test_cost_must_be_positive() -> None:
    with pytest.raises(ValueError, match="cost"):
        FairQueue[str]().push("a", 0, "x", now=0.0)

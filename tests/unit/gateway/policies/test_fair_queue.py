"""The fair queue's core: virtual token counters, lifting, correction, bounds, deadlines."""

from __future__ import annotations

import pytest

from corral.gateway.policies.fair_queue import (
    FairQueue,
    Popped,
    Pushed,
    RejectReason,
    Served,
    TokenDemand,
)


def d(allowance: int, prompt: int = 0) -> TokenDemand:
    return TokenDemand(prompt, allowance)


def drain(queue: FairQueue[str], now: float = 0.0) -> list[str]:
    order = []
    while (popped := queue.pop(now)).item is not None:
        order.append(popped.item)
    return order


def serve(queue: FairQueue[str], now: float = 0.0) -> tuple[str, int]:
    popped = queue.pop(now)
    assert popped.item is not None
    assert popped.lease is not None
    return popped.item, popped.lease


def test_equal_weights_alternate_between_backlogged_teams() -> None:
    queue: FairQueue[str] = FairQueue()
    for i in range(3):
        queue.push("a", d(100), f"a{i}", now=0.0)
    for i in range(3):
        queue.push("b", d(100), f"b{i}", now=0.0)
    assert drain(queue) == ["a0", "b0", "a1", "b1", "a2", "b2"]


def test_weights_set_the_ratio() -> None:
    queue: FairQueue[str] = FairQueue(weights={"a": 3.0})
    for i in range(9):
        queue.push("a", d(10), f"a{i}", now=0.0)
        queue.push("b", d(10), f"b{i}", now=0.0)
    first_eight = drain(queue)[:8]
    assert sum(item.startswith("a") for item in first_eight) == 6


def test_weights_divide_the_tokens_served_into_the_counter() -> None:
    queue: FairQueue[str] = FairQueue(weights={"a": 4.0})
    queue.push("a", d(10), "a0", now=0.0)
    queue.push("b", d(10), "b0", now=0.0)
    (_, lease_a), (_, lease_b) = serve(queue), serve(queue)
    queue.finish(lease_a, Served(completion=30, prompt=10))
    queue.finish(lease_b, Served(completion=30, prompt=10))
    assert (queue.counter("a"), queue.counter("b")) == (10.0, 40.0)


def test_reservations_follow_tokens_not_requests() -> None:
    queue: FairQueue[str] = FairQueue()
    for i in range(2):
        queue.push("big", d(400), f"big{i}", now=0.0)
    for i in range(8):
        queue.push("small", d(100), f"small{i}", now=0.0)
    order = drain(queue)
    assert order.index("big1") > order.index("small3")  # four small ones per big one


def test_a_newly_active_team_is_lifted_to_the_smallest_waiting_counter() -> None:
    queue: FairQueue[str] = FairQueue()
    for i in range(3):
        queue.push("a", d(50), f"a{i}", now=0.0)
        queue.push("b", d(70), f"b{i}", now=0.0)
    for _ in range(4):
        serve(queue)  # a and b now at 100 and 140
    queue.push("c", d(10), "c0", now=1.0)
    assert queue.counter("c") == min(queue.counter("a"), queue.counter("b")) == 100.0


def test_a_flooding_team_only_lengthens_its_own_line() -> None:
    queue: FairQueue[str] = FairQueue()
    for i in range(100):
        queue.push("noisy", d(50), f"n{i}", now=0.0)
    assert queue.pop(0.0).item == "n0"
    queue.push("quiet", d(50), "q0", now=1.0)
    # 99 noisy requests wait, yet the quiet team's first one is next
    assert queue.pop(1.0).item == "q0"


def test_an_idle_team_banks_no_credit() -> None:
    queue: FairQueue[str] = FairQueue()
    for i in range(10):
        queue.push("a", d(10), f"a{i}", now=0.0)
    assert [queue.pop(0.0).item for _ in range(5)] == [f"a{i}" for i in range(5)]
    for i in range(4):
        queue.push("b", d(10), f"b{i}", now=1.0)
    # b was idle while a was served; it is not owed five turns in a row now
    assert drain(queue, 1.0) == ["b0", "a5", "b1", "a6", "b2", "a7", "b3", "a8", "a9"]


def test_a_team_arriving_to_an_empty_queue_starts_at_the_last_served_counter() -> None:
    queue: FairQueue[str] = FairQueue()
    for _ in range(5):
        queue.finish(queue.admit("a", d(100)), Served(100))
    queue.admit("b", d(10))  # idle until now: starts where a was last served, not at zero
    assert queue.counter("b") == 400.0 + 10.0


def test_the_reservation_is_corrected_to_what_was_served() -> None:
    queue: FairQueue[str] = FairQueue()
    lease = queue.admit("a", d(4096, prompt=5))
    assert queue.counter("a") == 4101.0  # nothing learned yet: the whole allowance
    queue.finish(lease, Served(completion=20, prompt=7))
    assert queue.counter("a") == 27.0


def test_streamed_tokens_past_the_reservation_are_charged_as_they_come() -> None:
    queue: FairQueue[str] = FairQueue()
    queue.finish(queue.admit("a", d(100)), Served(completion=10, prompt=0))
    lease = queue.admit("a", d(100))  # reserves the 10 the team usually gets
    assert queue.counter("a") == 20.0
    queue.progress(lease, 5)
    assert queue.counter("a") == 20.0  # within the reservation
    queue.progress(lease, 60)
    assert queue.counter("a") == 70.0
    queue.finish(lease, Served(completion=80))  # prompt unknown: the estimate (0) stands
    assert queue.counter("a") == 90.0


def test_a_request_that_received_nothing_costs_nothing() -> None:
    queue: FairQueue[str] = FairQueue()
    lease = queue.admit("a", d(100, prompt=10))
    queue.finish(lease, None)
    queue.finish(lease, Served(50))  # a second end is ignored
    queue.progress(lease, 50)
    assert queue.counter("a") == 0.0


def test_reservations_learn_each_teams_usual_answer_capped_by_the_allowance() -> None:
    queue: FairQueue[str] = FairQueue()
    assert queue.reservation("a", d(4096, prompt=3)) == 4099  # nothing learned yet
    queue.finish(queue.admit("a", d(4096)), Served(completion=20))
    assert queue.reservation("a", d(4096, prompt=3)) == 23
    assert queue.reservation("b", d(4096)) == 20  # a newcomer borrows everyone's usual
    assert queue.reservation("a", d(8)) == 8


def test_a_team_without_max_tokens_is_not_starved_by_one_that_sets_it() -> None:
    # Both teams get 20 tokens; the light team asks for up to 4096, the flood for 20.
    queue: FairQueue[str] = FairQueue()
    running = [queue.admit("heavy", d(20)) for _ in range(4)]
    for i in range(60):
        queue.push("heavy", d(20), f"h{i}", now=0.0)
    turns_waited = []
    for round_ in range(10):
        queue.push("light", d(4096), f"l{round_}", now=float(round_))
        for waited in range(60):
            queue.finish(running.pop(0), Served(completion=20, prompt=5))
            item, lease = serve(queue, float(round_))
            running.append(lease)
            if item.startswith("l"):
                turns_waited.append(waited)
                break
            queue.push("heavy", d(20), f"h{round_}-{waited}", now=float(round_))  # keep flooding
    assert max(turns_waited) <= 1  # the next free slot, or the one after


def test_pop_reports_team_wait_and_lease() -> None:
    queue: FairQueue[str] = FairQueue()
    ticket = queue.push("a", d(1), "x", now=10.0).ticket
    assert queue.pop(12.5) == Popped("x", "a", 2.5, lease=ticket)
    assert queue.pop(13.0) == Popped(None)


def test_a_full_queue_refuses_the_heaviest_team() -> None:
    queue: FairQueue[str] = FairQueue(max_items=3)
    for i in range(3):
        assert queue.push("a", d(10), f"a{i}", now=0.0).accepted
    assert queue.push("a", d(10), "a3", now=0.0) == Pushed(False, reason=RejectReason.QUEUE_FULL)
    assert len(queue) == 3


def test_a_lighter_team_pushes_out_the_heaviest_teams_newest() -> None:
    queue: FairQueue[str] = FairQueue(max_items=3)
    for i in range(3):
        queue.push("a", d(10), f"a{i}", now=0.0)
    pushed = queue.push("b", d(10), "b0", now=0.0)
    assert (pushed.accepted, pushed.evicted) == (True, ("a2",))
    assert drain(queue) == ["a0", "b0", "a1"]


def test_backlogs_count_learned_estimates_not_allowances() -> None:
    queue: FairQueue[str] = FairQueue(max_items=4)
    queue.finish(queue.admit("light", d(4096)), Served(completion=20))
    queue.finish(queue.admit("heavy", d(20)), Served(completion=20))
    for i in range(3):
        queue.push("heavy", d(20), f"h{i}", now=0.0)
    queue.push("light", d(4096), "l0", now=0.0)
    # light's requests count as the 20 tokens it usually gets (40 with this one), not 4096 each
    assert queue.push("light", d(4096), "l1", now=0.0).evicted == ("h2",)


def test_weights_decide_who_is_heaviest() -> None:
    queue: FairQueue[str] = FairQueue(weights={"a": 4.0}, max_items=3)
    queue.push("a", d(10), "a0", now=0.0)
    queue.push("a", d(10), "a1", now=0.0)
    queue.push("b", d(10), "b0", now=0.0)
    # a holds 20/4 = 5 weighted, b would hold 20/1 = 20: b is the heavier one
    assert queue.push("b", d(10), "b1", now=0.0).reason is RejectReason.QUEUE_FULL


def test_expired_items_are_dropped_and_reported_at_pop() -> None:
    queue: FairQueue[str] = FairQueue()
    queue.push("a", d(10), "late", now=0.0, deadline=5.0)
    ticket = queue.push("b", d(10), "fine", now=0.0, deadline=50.0).ticket
    assert queue.pop(6.0) == Popped("fine", "b", 6.0, expired=("late",), lease=ticket)
    assert len(queue) == 0


def test_expire_sweeps_items_anywhere_in_line() -> None:
    queue: FairQueue[str] = FairQueue()
    queue.push("a", d(10), "a0", now=0.0, deadline=100.0)
    queue.push("a", d(10), "a1", now=0.0, deadline=5.0)
    queue.push("a", d(10), "a2", now=0.0)
    assert queue.expire(6.0) == ("a1",)
    assert drain(queue, 6.0) == ["a0", "a2"]


def test_cancel_withdraws_at_no_charge() -> None:
    queue: FairQueue[str] = FairQueue()
    tickets = [queue.push("a", d(10), f"a{i}", now=0.0).ticket for i in range(3)]
    for i in range(3):
        queue.push("b", d(10), f"b{i}", now=0.0)
    assert tickets[0] is not None
    assert queue.cancel(tickets[0])
    assert not queue.cancel(tickets[0])
    assert (queue.backlog("a"), queue.counter("a")) == (20, 0.0)
    assert drain(queue) == ["a1", "b0", "a2", "b1", "b2"]


def test_requests_ahead_counts_own_line_and_others_fair_turns() -> None:
    queue: FairQueue[str] = FairQueue(weights={"a": 2.0})
    for i in range(10):
        queue.push("a", d(10), f"a{i}", now=0.0)
    queue.push("b", d(10), "b0", now=0.0)
    assert queue.requests_ahead("b") == 1 + 4  # its own, and a's two turns per b turn
    assert queue.requests_ahead("c") == 2 + 1
    assert queue.requests_ahead("a") == 10 + 1


def test_withdrawn_items_leave_nothing_behind() -> None:
    queue: FairQueue[str] = FairQueue()
    for i in range(10_000):
        ticket = queue.push(f"team{i % 3}", d(10), "x", now=float(i)).ticket
        assert ticket is not None
        queue.cancel(ticket)
    assert len(queue) == 0
    assert (queue._queues, queue._backlog, queue._leases) == ({}, {}, {})


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"max_items": 0}, "max_items"), ({"weights": {"a": 0.0}}, "weights")],
)
def test_config_refuses_nonsense(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        FairQueue(**kwargs)  # type: ignore[arg-type]


def test_token_counts_cannot_be_negative() -> None:
    with pytest.raises(ValueError, match="negative"):
        TokenDemand(-1, 10)

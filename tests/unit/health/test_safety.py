"""The safety gate: budgets per NodePool, the breaker, pacing and opt-outs, as plain data."""

from __future__ import annotations

import pytest

from corral.health.policy import Action, Decision, Finding, Rule
from corral.health.safety import Fleet, PoolNode, SafetyConfig, budget, clear


def faulty(node: str, action: Action = Action.DRAIN_REPLACE) -> Decision:
    return Decision(node, (Finding(Rule.FATAL_HARDWARE, action, "gpu0", "Xid 79"),))


def pool(size: int, name: str = "p", *replacing: PoolNode) -> tuple[PoolNode, ...]:
    given = {n.name: n for n in replacing}
    return tuple(given.get(f"{name}-{i}", PoolNode(f"{name}-{i}", name)) for i in range(size))


@pytest.mark.parametrize(("size", "allowed"), [(1, 1), (9, 1), (10, 1), (20, 2), (55, 5)])
def test_budget_is_ten_percent_but_at_least_one(size: int, allowed: int) -> None:
    assert budget(size, SafetyConfig()) == allowed


def test_faults_on_30_percent_in_one_batch_trip_the_breaker_and_touch_nothing() -> None:
    fleet = Fleet(pool(10))
    gate = clear([faulty(f"p-{i}") for i in range(3)], fleet, now=0.0)
    assert gate.trip == "3 of 10 nodes in NodePool p unhealthy (30%)"
    assert not any(c.allowed for c in gate.clearances)


def test_faults_on_20_percent_act_within_the_budget_only() -> None:
    gate = clear([faulty("p-1"), faulty("p-0", Action.DRAIN_RESET)], Fleet(pool(10)), now=0.0)
    assert gate.trip == ""
    allowed = [c.decision.node for c in gate.clearances if c.allowed]
    held = {c.decision.node: c.reason for c in gate.clearances if not c.allowed}
    assert allowed == ["p-1"]  # the stronger action goes first
    assert held == {"p-0": "NodePool p budget used (1 of 1 nodes in remediation)"}


def test_budgets_are_per_pool() -> None:
    fleet = Fleet(pool(10, "a") + pool(10, "b"))
    gate = clear([faulty("a-0"), faulty("b-0")], fleet, now=0.0)
    assert all(c.allowed for c in gate.clearances)


def test_nodes_already_in_remediation_use_the_budget() -> None:
    busy = PoolNode("p-5", "p", unhealthy=True, in_remediation=True)
    gate = clear([faulty("p-0")], Fleet(pool(10, "p", busy)), now=0.0)
    assert not gate.clearances[0].allowed


def test_an_open_breaker_holds_everything_but_warnings() -> None:
    warn = Decision("p-2", (Finding(Rule.UNKNOWN_XID, Action.WARN, "gpu0", "Xid 8"),))
    restart = Decision("p-3", (Finding(Rule.APPLICATION_XID, Action.RESTART_WORKLOAD, "g", "13"),))
    fleet = Fleet(pool(10), breaker_open=True, breaker_reason="3 of 10")
    gate = clear([faulty("p-1"), warn, restart], fleet, now=0.0)
    verdicts = {c.decision.node: c.allowed for c in gate.clearances}
    assert verdicts == {"p-1": False, "p-2": True, "p-3": False}
    assert gate.trip == ""  # already open: not tripped again


def test_opt_out_and_minimum_interval() -> None:
    nodes = pool(
        20,
        "p",
        PoolNode("p-0", "p", opted_out=True),
        PoolNode("p-1", "p", last_action_at=1000.0),
    )
    gate = clear([faulty("p-0"), faulty("p-1")], Fleet(nodes), now=1000.0 + 600)
    reasons = {c.decision.node: c.reason for c in gate.clearances}
    assert reasons["p-0"] == "node opted out of automatic remediation"
    assert reasons["p-1"] == "acted on too recently; next action allowed in 1200s"
    later = clear([faulty("p-1")], Fleet(nodes), now=1000.0 + 1800)
    assert later.clearances[0].allowed

"""Remediation safety, pure: NodePool budgets, the circuit breaker, pacing, opt-outs."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from corral.health.policy import Action, Decision


@dataclass(frozen=True, slots=True)
class SafetyConfig:
    """Limits no remediation may exceed."""

    max_share: float = 0.10
    """Most of a NodePool acted on at once (at least one node, so small pools can heal)."""
    breaker_share: float = 0.20
    """Above this share of a NodePool unhealthy, all remediation stops until a human resets it."""
    min_interval_s: float = 1800.0
    """Least time between two remediations of the same node."""


@dataclass(frozen=True, slots=True)
class PoolNode:
    """One node of a NodePool as the cluster shows it."""

    name: str
    pool: str
    unhealthy: bool = False
    in_remediation: bool = False
    opted_out: bool = False
    last_action_at: float | None = None


@dataclass(frozen=True, slots=True)
class Fleet:
    """The nodes remediation must keep safe, and whether the breaker is already open."""

    nodes: tuple[PoolNode, ...] = ()
    breaker_open: bool = False
    breaker_reason: str = ""

    def pool_of(self, node: str) -> str:
        return next((n.pool for n in self.nodes if n.name == node), "")

    def in_pool(self, pool: str) -> tuple[PoolNode, ...]:
        return tuple(n for n in self.nodes if n.pool == pool)


@dataclass(frozen=True, slots=True)
class Clearance:
    """Whether one decision may be carried out now, and if not, why."""

    decision: Decision
    allowed: bool
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Gate:
    """The outcome for a batch of decisions; ``trip`` says why the breaker must open now."""

    clearances: tuple[Clearance, ...]
    trip: str = ""


def clear(
    decisions: Sequence[Decision], fleet: Fleet, now: float, config: SafetyConfig | None = None
) -> Gate:
    """Which of ``decisions`` may act now. Warnings always pass; the rest obey every limit."""
    config = config or SafetyConfig()
    trip = "" if fleet.breaker_open else _breaker_trip(decisions, fleet, config)
    paused = fleet.breaker_reason if fleet.breaker_open else trip
    used: dict[str, int] = {}
    results: list[Clearance] = []
    for decision in sorted(decisions, key=lambda d: (-d.action.severity, d.node)):
        results.append(_clear_one(decision, fleet, now, config, paused=paused, used=used))
    return Gate(tuple(results), trip)


def budget(pool_size: int, config: SafetyConfig) -> int:
    """Nodes of a pool of ``pool_size`` that may be in remediation at once."""
    return max(1, math.floor(pool_size * config.max_share + 1e-9))


def _clear_one(
    decision: Decision,
    fleet: Fleet,
    now: float,
    config: SafetyConfig,
    *,
    paused: str,
    used: dict[str, int],
) -> Clearance:
    action = decision.action
    if action in (Action.NONE, Action.WARN):
        return Clearance(decision, True)
    if paused:
        reason = f"circuit breaker open ({paused}); a human must reset it"
    else:
        reason = _node_hold(decision, fleet, now, config)
    if not reason and action.acts_on_node:
        reason = _take_budget(decision.node, fleet, config, used)
    return Clearance(decision, not reason, reason)


def _node_hold(decision: Decision, fleet: Fleet, now: float, config: SafetyConfig) -> str:
    """Why this node must not be touched now ('' when it may)."""
    node = next((n for n in fleet.nodes if n.name == decision.node), None)
    if node is None:
        return ""
    if node.opted_out:
        return "node opted out of automatic remediation"
    if node.last_action_at is not None and now - node.last_action_at < config.min_interval_s:
        wait = config.min_interval_s - (now - node.last_action_at)
        return f"acted on too recently; next action allowed in {wait:.0f}s"
    if node.in_remediation and decision.action.acts_on_node:
        return "already in remediation"
    return ""


def _take_budget(node: str, fleet: Fleet, config: SafetyConfig, used: dict[str, int]) -> str:
    """Reserve a slot of the node's NodePool budget; why not when none is left."""
    pool = fleet.pool_of(node)
    members = fleet.in_pool(pool)
    busy = sum(1 for n in members if n.in_remediation) + used.get(pool, 0)
    allowed = budget(len(members), config)
    if busy >= allowed:
        return f"NodePool {pool or '?'} budget used ({busy} of {allowed} nodes in remediation)"
    used[pool] = used.get(pool, 0) + 1
    return ""


def _breaker_trip(decisions: Sequence[Decision], fleet: Fleet, config: SafetyConfig) -> str:
    faulty = {d.node for d in decisions if d.action.acts_on_node}
    for pool in sorted({n.pool for n in fleet.nodes}):
        members = fleet.in_pool(pool)
        bad = sum(1 for n in members if n.unhealthy or n.in_remediation or n.name in faulty)
        if members and bad / len(members) > config.breaker_share:
            share = 100 * bad / len(members)
            return f"{bad} of {len(members)} nodes in NodePool {pool} unhealthy ({share:.0f}%)"
    return ""

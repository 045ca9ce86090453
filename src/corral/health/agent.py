"""The GPU health agent: probe, decide, report and remediate within the safety limits, in a loop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from typing import Literal

from corral.clock import Clock
from corral.errors import CorralError
from corral.health.eks_node_health import read_conditions
from corral.health.fleet import Breaker, Replacements, read_fleet
from corral.health.markers import CONDITION
from corral.health.metrics import HealthMetrics
from corral.health.observations import Observation, merge
from corral.health.policy import (
    Action,
    Decision,
    History,
    PolicyConfig,
    Verdict,
    decide,
    hand_repair_to,
)
from corral.health.port import GpuProbe
from corral.health.remediation import Remediator
from corral.health.safety import Fleet, SafetyConfig, clear
from corral.kube.port import KubeClient

log = logging.getLogger(__name__)

RepairOwner = Literal["corral", "eks"]

_REASONS = {
    Verdict.HEALTHY: "GpuHealthy",
    Verdict.DEGRADED: "GpuDegraded",
    Verdict.FAULTY: "GpuFault",
}


@dataclass(frozen=True, slots=True)
class AgentConfig:
    """How one node's agent behaves."""

    node: str
    """The node this agent runs on (from the downward API: spec.nodeName)."""
    interval_s: float = 30.0
    """Time between probe rounds."""
    recover_after_s: float = 1800.0
    """How long a node taken out must stay healthy-looking before it is put back in service."""
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    safety: SafetyConfig = field(default_factory=SafetyConfig)
    eks_node_conditions: bool = False
    """Also read the EKS node monitoring agent's conditions on this node each round."""
    repair_owner: RepairOwner = "corral"
    """Who repairs a faulty node: corral (reset, reboot, replace), or eks when EKS node auto
    repair is enabled for the node's pool (Corral then only stops routing, cordons and drains)."""


class HealthAgent:
    """Runs the loop for one node; every dependency is passed in."""

    def __init__(
        self,
        *,
        config: AgentConfig,
        probe: GpuProbe,
        kube: KubeClient,
        remediator: Remediator,
        breaker: Breaker,
        replacements: Replacements | None = None,
        metrics: HealthMetrics,
        clock: Clock,
    ) -> None:
        self._config = config
        self._probe = probe
        self._kube = kube
        self._remediator = remediator
        self._breaker = breaker
        self._replacements = replacements
        self._metrics = metrics
        self._clock = clock
        self._history = History()
        self._reported: tuple[str, str] | None = None
        self._last_decision: tuple[str, str] | None = None

    async def run_once(self) -> Decision:
        """One round: probe, decide, report, act (or hold). Returns the round's decision."""
        node, now = self._config.node, self._clock.now()
        seen = await asyncio.to_thread(self._probe.observe)
        if self._config.eks_node_conditions:
            seen = merge([seen, await read_conditions(self._kube, node)])
        decision, self._history = decide(node, seen, self._history, now, self._config.policy)
        decision = hand_repair_to(decision, self._config.repair_owner)
        self._metrics.record(seen, decision)
        await self._report(decision, seen)
        fleet = await read_fleet(self._kube, node, self._breaker, self._replacements)
        await self._act(decision, fleet, now)
        return decision

    async def run(self, stop: asyncio.Event) -> None:
        """A round every ``interval_s`` until ``stop`` is set; a failed round is only logged."""
        while not stop.is_set():
            try:
                await self.run_once()
            except CorralError as exc:
                log.warning("gpu health round failed: %s", exc.message)
                await self._report_unknown(exc.message)
            await self._pause(stop)

    async def _pause(self, stop: asyncio.Event) -> None:
        """Wait one interval on the agent's clock, or less when ``stop`` is set meanwhile."""
        tick = asyncio.ensure_future(self._clock.sleep(self._config.interval_s))
        stopped = asyncio.ensure_future(stop.wait())
        await asyncio.wait({tick, stopped}, return_when=asyncio.FIRST_COMPLETED)
        for task in (tick, stopped):
            task.cancel()

    async def _act(self, decision: Decision, fleet: Fleet, now: float) -> None:
        gate = clear([decision], fleet, now, self._config.safety)
        if gate.trip:
            await self._breaker.trip(gate.trip)
            log.error("gpu remediation circuit breaker tripped: %s", gate.trip)
        self._metrics.breaker_open.set(1.0 if fleet.breaker_open or gate.trip else 0.0)
        key = (decision.action.value, decision.reasons())
        for clearance in gate.clearances:
            repeat = (
                clearance.allowed and decision.action.severity >= Action.RESTART_WORKLOAD.severity
            )
            if repeat or key != self._last_decision:
                outcome = "done" if clearance.allowed else "held"
                self._metrics.record_remediation(decision.action.value, outcome)
                await self._remediator.carry_out(clearance)
        self._last_decision = key
        await self._maybe_recover(decision, fleet, now)

    async def _maybe_recover(self, decision: Decision, fleet: Fleet, now: float) -> None:
        me = next((n for n in fleet.nodes if n.name == self._config.node), None)
        if me is None or not me.in_remediation or decision.verdict is not Verdict.HEALTHY:
            return
        if me.last_action_at is not None and now - me.last_action_at < self._config.recover_after_s:
            return
        await self._remediator.restore(self._config.node)

    async def _report(self, decision: Decision, seen: Observation) -> None:
        status = "False" if decision.verdict is Verdict.FAULTY else "True"
        message = decision.reasons()
        if seen.problems:
            message += f" (could not read: {'; '.join(seen.problems)})"
        await self._set_condition(status, _REASONS[decision.verdict], message)

    async def _report_unknown(self, why: str) -> None:
        with contextlib.suppress(CorralError):
            await self._set_condition("Unknown", "ProbeFailed", why)

    async def _set_condition(self, status: str, reason: str, message: str) -> None:
        if self._reported == (status, message):
            return  # unchanged; no need to write the Node again
        await self._kube.set_node_condition(
            self._config.node, CONDITION, status, reason, message[:1000]
        )
        self._reported = (status, message)

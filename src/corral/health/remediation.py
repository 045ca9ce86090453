"""Carries out cleared decisions in order: stop routing, cordon, drain, reset or replace, audit."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Awaitable, Callable

from corral.clock import Clock
from corral.errors import CorralError, PermanentError, TemporaryError
from corral.health.drain import DrainLimits, DrainResult, drain
from corral.health.fleet import Replacements
from corral.health.markers import ACTED_AT, ACTOR, TAINT_KEY
from corral.health.policy import Action, Decision
from corral.health.port import AuditEntry, AuditSink, EndpointEjector, NodeResetter
from corral.health.safety import Clearance
from corral.kube.port import KubeClient

_GPU = re.compile(r"^gpu(\d+)$")


class Remediator:
    """Executes cleared decisions against Kubernetes, the gateway and the node; audits each step."""

    def __init__(
        self,
        *,
        kube: KubeClient,
        ejector: EndpointEjector,
        audit: AuditSink,
        clock: Clock,
        resetter: NodeResetter | None = None,
        replacements: Replacements | None = None,
        drain_limits: DrainLimits | None = None,
        dry_run: bool = False,
    ) -> None:
        self._kube = kube
        self._ejector = ejector
        self._audit = audit
        self._clock = clock
        self._resetter = resetter
        self._replacements = replacements
        self._limits = drain_limits or DrainLimits()
        self.dry_run = dry_run

    async def carry_out(self, clearance: Clearance) -> None:
        """Do what the decision says, or record why it is held."""
        decision = clearance.decision
        if decision.action is Action.NONE:
            return
        if not clearance.allowed:
            await self._held(decision, clearance.reason)
        elif decision.action is Action.WARN:
            await self._event(decision.node, "GpuHealthWarning", decision.reasons(), "Warning")
        elif decision.action is Action.RESTART_WORKLOAD:
            await self._restart_workloads(decision)
        else:
            await self._take_out(decision)

    async def restore(self, node: str) -> None:
        """Put a node that is healthy again back into service (uncordon, route to it again)."""
        if await self._step(node, "uncordon", "GPUs healthy again", self._uncordon(node)):
            await self._step(node, "restore-routing", "", lambda: self._ejector.restore_node(node))

    async def _take_out(self, decision: Decision) -> None:
        node, action, why = decision.node, decision.action, decision.reasons()
        await self._event(node, "GpuRemediationStarted", f"{action.value}: {why}", "Warning")
        if not await self._step(
            node, "stop-routing", why, lambda: self._ejector.eject_node(node, why)
        ):
            return
        if not await self._step(node, "cordon", f"taint {TAINT_KEY}", self._cordon(node, action)):
            return
        if action is Action.OUT_OF_ROTATION:
            await self._event(node, "GpuOutOfRotation", f"needs attention: {why}", "Warning")
            return
        result = await self._drain(node)
        if result is None or result.capped:
            return
        if action is Action.DRAIN:
            detail = f"drained for EKS node auto repair, which reboots or replaces it: {why}"
            await self._event(node, "GpuRepairHandedToEks", detail, "Warning")
            return
        if action is Action.DRAIN_RESET and await self._reset(decision):
            return
        await self._step(
            node, "replace", "delete it; Karpenter provisions a fresh one", (self._replace(node))
        )

    async def _drain(self, node: str) -> DrainResult | None:
        if self.dry_run:
            await self._record(node, "drain", "evict every pod (PDBs respected)", "dry-run")
            return DrainResult((), (), 0, capped=False)
        try:
            result = await drain(self._kube, node, self._clock, self._limits)
        except CorralError as exc:
            await self._record(node, "drain", exc.message, "failed")
            return None
        detail = f"evicted {len(result.evicted)} pods, {result.refusals} refusals"
        if result.capped:
            detail += f"; stopped after {self._limits.timeout_s:.0f}s with {result.remaining}"
            await self._event(node, "GpuDrainCapped", detail, "Warning")
        await self._record(node, "drain", detail, "capped" if result.capped else "ok")
        return result

    async def _reset(self, decision: Decision) -> bool:
        """Reset the faulty GPUs (or reboot); False when that failed and the node must go."""
        devices = tuple(
            sorted({int(m[1]) for f in decision.findings if (m := _GPU.match(f.device))})
        )
        resetter = self._resetter

        async def reset() -> None:
            if resetter is None:
                raise PermanentError("no GPU reset is configured on this agent; replacing instead")
            await resetter.reset(decision.node, devices)

        return await self._step(decision.node, "reset", f"GPUs {list(devices) or 'all'}", reset)

    async def _restart_workloads(self, decision: Decision) -> None:
        wanted = set(decision.workloads_to_restart)
        pods = await self._kube.list_pods_on_node(decision.node) if wanted else []
        for pod in pods:
            meta = pod["metadata"]
            if meta.get("uid") not in wanted:
                continue
            name, namespace = meta["name"], meta.get("namespace", "default")
            detail = f"evict {namespace}/{name}: {decision.reasons()}"
            await self._step(
                decision.node, "restart-workload", detail, self._evict(name, namespace)
            )
        if not wanted:
            await self._event(decision.node, "GpuApplicationError", decision.reasons(), "Warning")

    async def _held(self, decision: Decision, reason: str) -> None:
        detail = f"{decision.action.value} held: {reason}; {decision.reasons()}"
        await self._event(decision.node, "GpuRemediationHeld", detail, "Warning")
        await self._record(decision.node, decision.action.value, detail, "held")

    def _cordon(self, node: str, action: Action) -> Callable[[], Awaitable[None]]:
        async def cordon() -> None:
            taint = {"key": TAINT_KEY, "value": action.value, "effect": "NoSchedule"}
            await self._kube.cordon(node, taint)
            stamp = {ACTED_AT: f"{self._clock.now():.0f}"}
            meta = {"name": node, "annotations": stamp}
            await self._kube.apply({"apiVersion": "v1", "kind": "Node", "metadata": meta})

        return cordon

    def _replace(self, node: str) -> Callable[[], Awaitable[None]]:
        async def replace() -> None:
            if self._replacements is not None:
                await self._replacements.record(node)  # before: the node's pool is still readable
            await self._kube.delete_node(node)

        return replace

    def _evict(self, name: str, namespace: str) -> Callable[[], Awaitable[None]]:
        async def evict() -> None:
            await self._kube.evict(name, namespace)

        return evict

    def _uncordon(self, node: str) -> Callable[[], Awaitable[None]]:
        async def uncordon() -> None:
            await self._kube.uncordon(node, TAINT_KEY)

        return uncordon

    async def _step(
        self, node: str, action: str, detail: str, run: Callable[[], Awaitable[None]]
    ) -> bool:
        """Run one step (or only record it in dry-run mode); True when it succeeded."""
        if self.dry_run:
            await self._record(node, action, detail, "dry-run")
            return True
        try:
            await run()
        except CorralError as exc:
            await self._record(node, action, f"{detail}: {exc.message}", "failed")
            kind = "retry later" if isinstance(exc, TemporaryError) else "needs a human"
            await self._event(node, "GpuRemediationFailed", f"{action}: {exc.message} ({kind})")
            return False
        await self._record(node, action, detail, "ok")
        return True

    async def _record(self, node: str, action: str, detail: str, outcome: str) -> None:
        entry = AuditEntry(
            at=self._clock.now(),
            actor=ACTOR,
            action=f"gpu-health.{action}",
            target=f"node/{node}",
            detail=detail,
            outcome=outcome,
            dry_run=self.dry_run,
        )
        await self._audit.record(entry)

    async def _event(self, node: str, reason: str, message: str, kind: str = "Warning") -> None:
        involved = {"apiVersion": "v1", "kind": "Node", "name": node}
        text = f"(dry run) {message}" if self.dry_run else message
        # An event is a courtesy; the audit log is the record, so a failed event is let go.
        with contextlib.suppress(CorralError):
            await self._kube.emit_event(
                involved, reason, text[:1000], "Normal" if kind == "Normal" else "Warning"
            )

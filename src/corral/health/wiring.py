"""Assembles the GPU health agent from real adapters (the DaemonSet's entry point)."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Sequence

from prometheus_client import CollectorRegistry, start_http_server

from corral.clock import SystemClock
from corral.errors import PermanentError
from corral.health.agent import AgentConfig, HealthAgent, RepairOwner
from corral.health.audit_log import LogAuditSink
from corral.health.fleet import Breaker, ConfigMapEjector, Replacements
from corral.health.markers import BREAKER_NAME
from corral.health.metrics import HealthMetrics
from corral.health.port import AuditEntry, AuditSink, EndpointEjector, GpuProbe
from corral.health.remediation import Remediator
from corral.health.reset import CommandResetter
from corral.kube.port import KubeClient

log = logging.getLogger(__name__)


def connect_kube() -> KubeClient:
    """The real Kubernetes client (lightkube, imported only when the agent runs)."""
    try:
        from corral.kube.lightkube_client import LightkubeClient
    except ImportError as exc:
        raise PermanentError(
            f"the Kubernetes client is not installed ({exc}); pip install 'corral[k8s]'"
        ) from exc
    return LightkubeClient.in_cluster()


async def run_agent(
    *,
    node: str,
    namespace: str,
    probe: GpuProbe,
    interval_s: float,
    dry_run: bool,
    metrics_port: int,
    stop_signals: Sequence[signal.Signals] = (),
    kube: KubeClient | None = None,
    ejector: EndpointEjector | None = None,
    audit: AuditSink | None = None,
    eks_node_conditions: bool = False,
    repair_owner: RepairOwner = "corral",
) -> None:
    """Run the agent until one of ``stop_signals`` arrives. Unset adapters get the defaults."""
    clock = SystemClock()
    kube = kube or connect_kube()
    registry = CollectorRegistry()
    if metrics_port:
        start_http_server(metrics_port, registry=registry)
    replacements = Replacements(kube, clock, namespace)
    remediator = Remediator(
        kube=kube,
        ejector=ejector or ConfigMapEjector(kube, namespace),
        audit=audit or LogAuditSink(),
        clock=clock,
        resetter=CommandResetter(node),
        replacements=replacements,
        dry_run=dry_run,
    )
    agent = HealthAgent(
        config=AgentConfig(
            node=node,
            interval_s=interval_s,
            eks_node_conditions=eks_node_conditions,
            repair_owner=repair_owner,
        ),
        probe=probe,
        kube=kube,
        remediator=remediator,
        breaker=Breaker(kube, clock, namespace),
        replacements=replacements,
        metrics=HealthMetrics(registry),
        clock=clock,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in stop_signals:
        loop.add_signal_handler(sig, stop.set)
    log.info("gpu health agent on %s (dry run: %s)", node, dry_run)
    await agent.run(stop)


async def reset_breaker(namespace: str, *, actor: str, kube: KubeClient | None = None) -> None:
    """Close the breaker and say who did it in the audit log."""
    clock = SystemClock()
    kube = kube or connect_kube()
    await Breaker(kube, clock, namespace).reset()
    entry = AuditEntry(clock.now(), actor, "gpu-health.reset-breaker", BREAKER_NAME, "", "ok")
    await LogAuditSink().record(entry)

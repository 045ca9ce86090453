"""One faulty node drained and replaced through the real lightkube adapter, against kmock."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import kmock
import pytest
from prometheus_client import CollectorRegistry

from corral.clock import FakeClock
from corral.health.agent import AgentConfig, HealthAgent
from corral.health.fake import FakeGpuProbe, MemoryAuditSink, RecordingEjector
from corral.health.fleet import Breaker, Replacements
from corral.health.markers import POOL_LABEL, TAINT_KEY
from corral.health.metrics import HealthMetrics
from corral.health.remediation import Remediator
from corral.kube.lightkube_client import LightkubeClient
from support.kube_api import emulated_api, lightkube_on

FIXTURES = Path(__file__).parents[2] / "fixtures" / "gpu"
RESOURCES = {
    "v1/nodes": ("Node", False),
    "v1/pods": ("Pod", True),
    "v1/events": ("Event", True),
    "v1/configmaps": ("ConfigMap", True),
}


@pytest.fixture
async def api() -> AsyncIterator[kmock.KubernetesEmulator]:
    async with emulated_api(RESOURCES) as emulator:
        yield emulator


@pytest.fixture
async def kube(api: kmock.KubernetesEmulator) -> AsyncIterator[LightkubeClient]:
    async with lightkube_on(api) as client:
        yield client


async def test_a_faulty_node_is_stopped_cordoned_and_replaced_through_the_api(
    kube: LightkubeClient,
) -> None:
    for i in range(10):
        meta = {"name": f"gpu-{i}", "labels": {POOL_LABEL: "h100"}}
        await kube.apply({"apiVersion": "v1", "kind": "Node", "metadata": meta, "spec": {}})
    agent_pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "gpu-health-0",
            "namespace": "corral-system",
            "ownerReferences": [
                {"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "gh", "uid": "u1"}
            ],
        },
        "spec": {"nodeName": "gpu-0", "containers": [{"name": "agent", "image": "corral"}]},
    }
    await kube.apply(agent_pod)
    clock = FakeClock()
    audit = MemoryAuditSink()
    ejector = RecordingEjector()
    replacements = Replacements(kube, clock, "corral-system")
    remediator = Remediator(
        kube=kube, ejector=ejector, audit=audit, clock=clock, replacements=replacements
    )
    agent = HealthAgent(
        config=AgentConfig(node="gpu-0"),
        probe=FakeGpuProbe.from_fixtures(kernel_log=FIXTURES / "kernel-log" / "xid-79.log"),
        kube=kube,
        remediator=remediator,
        breaker=Breaker(kube, clock, "corral-system"),
        replacements=replacements,
        metrics=HealthMetrics(CollectorRegistry()),
        clock=clock,
    )

    await agent.run_once()

    assert [(e.action, e.outcome) for e in audit.entries] == [
        ("gpu-health.stop-routing", "ok"),
        ("gpu-health.cordon", "ok"),
        ("gpu-health.drain", "ok"),
        ("gpu-health.replace", "ok"),
    ]
    assert ejector.ejected == {"gpu-0"}
    assert await kube.get("v1", "Node", "gpu-0") is None
    replaced = await kube.get("v1", "ConfigMap", "corral-gpu-health-replacements", "corral-system")
    assert replaced is not None
    assert replaced["data"]["gpu-0"].startswith("h100@")
    events = await kube.list("v1", "Event", "default")
    assert "GpuRemediationStarted" in [e["reason"] for e in events]
    untouched = await kube.get("v1", "Node", "gpu-1")
    assert untouched is not None
    assert TAINT_KEY not in str(untouched.get("spec"))

"""Remediation scenarios against FakeKube: order, PDBs, budgets, the breaker, dry-run, recovery."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from corral.clock import FakeClock
from corral.errors import PermanentError
from corral.health.agent import AgentConfig, HealthAgent
from corral.health.drain import DrainLimits
from corral.health.fake import FakeGpuProbe, FakeResetter, MemoryAuditSink, RecordingEjector
from corral.health.fleet import Breaker, Replacements
from corral.health.markers import (
    ACTED_AT,
    BREAKER_NAME,
    CONDITION,
    OPT_OUT_LABEL,
    POOL_LABEL,
    TAINT_KEY,
)
from corral.health.metrics import HealthMetrics
from corral.health.observations import DeviceReading, Observation, Throttle, XidEvent
from corral.health.policy import Action
from corral.health.remediation import Remediator
from corral.kube import FakeKube, ObjectKey

FIXTURES = Path(__file__).parents[2] / "fixtures" / "gpu"
NAMESPACE = "corral-system"


class OrderCheckingEjector(RecordingEjector):
    """Fails the test if the node is already cordoned when the gateway is told to stop routing."""

    def __init__(self, kube: FakeKube) -> None:
        super().__init__()
        self.kube = kube
        self.cordoned_at_ejection: list[bool] = []

    async def eject_node(self, node: str, reason: str) -> None:
        spec = self.kube.objects[ObjectKey("v1", "Node", node)]["spec"]
        self.cordoned_at_ejection.append(bool(spec.get("unschedulable")))
        await super().eject_node(node, reason)


class Cluster:
    """A FakeKube NodePool of ``size`` GPU nodes with one model pod and one DaemonSet pod each."""

    def __init__(self, size: int = 10, node_labels: dict[str, str] | None = None) -> None:
        self.clock = FakeClock()
        self.kube = FakeKube(self.clock)
        self.audit = MemoryAuditSink()
        self.ejector = OrderCheckingEjector(self.kube)
        self.registry = CollectorRegistry()
        self.metrics = HealthMetrics(self.registry)
        self.breaker = Breaker(self.kube, self.clock, NAMESPACE)
        self.replacements = Replacements(self.kube, self.clock, NAMESPACE)
        self.pods: dict[str, dict[str, Any]] = {}
        for i in range(size):
            name = f"node-{i}"
            labels = {POOL_LABEL: "gpu-h100", **((node_labels or {}) if i == 0 else {})}
            self.kube.add_node(name, labels)
            self.pods[name] = self.kube.add_pod(f"vllm-{i}", "models", name)
            agent_pod = self.kube.add_pod(f"gpu-health-{i}", NAMESPACE, name)
            agent_pod["metadata"]["ownerReferences"] = [{"kind": "DaemonSet", "name": "gh"}]

    def agent(
        self,
        node: str,
        probe: FakeGpuProbe,
        *,
        resetter: FakeResetter | None = None,
        dry_run: bool = False,
        limits: DrainLimits | None = None,
        **config: Any,
    ) -> HealthAgent:
        remediator = Remediator(
            kube=self.kube,
            ejector=self.ejector,
            audit=self.audit,
            clock=self.clock,
            resetter=resetter,
            replacements=self.replacements,
            drain_limits=limits,
            dry_run=dry_run,
        )
        return HealthAgent(
            config=AgentConfig(node=node, **config),
            probe=probe,
            kube=self.kube,
            remediator=remediator,
            breaker=self.breaker,
            replacements=self.replacements,
            metrics=self.metrics,
            clock=self.clock,
        )

    def node(self, name: str) -> dict[str, Any] | None:
        return self.kube.objects.get(ObjectKey("v1", "Node", name))

    def calls(self, verb: str) -> list[tuple[Any, ...]]:
        return [args for v, args in self.kube.calls if v == verb]

    def steps(self) -> list[tuple[str, str, str]]:
        return [
            (e.target, e.action.removeprefix("gpu-health."), e.outcome) for e in self.audit.entries
        ]


def probe(fixture: str) -> FakeGpuProbe:
    return FakeGpuProbe.from_fixtures(kernel_log=FIXTURES / "kernel-log" / fixture)


def faulty(code: int = 79) -> FakeGpuProbe:
    return probe(f"xid-{code}.log")


async def test_a_faulty_node_is_ejected_cordoned_drained_and_replaced_in_that_order() -> None:
    cluster = Cluster()

    decision = await cluster.agent("node-0", faulty(79)).run_once()

    assert decision.action is Action.DRAIN_REPLACE
    assert cluster.steps() == [
        ("node/node-0", "stop-routing", "ok"),
        ("node/node-0", "cordon", "ok"),
        ("node/node-0", "drain", "ok"),
        ("node/node-0", "replace", "ok"),
    ]
    assert cluster.ejector.cordoned_at_ejection == [False]  # the gateway was told first
    verbs = [v for v in cluster.kube.verbs() if v in ("cordon", "evict", "delete_node")]
    assert verbs == ["cordon", "evict", "delete_node"]
    assert cluster.calls("evict") == [("vllm-0", "models")]  # the DaemonSet pod stays
    assert cluster.calls("cordon")[0][1] == {
        "key": TAINT_KEY,
        "value": "drain-replace",
        "effect": "NoSchedule",
    }
    assert cluster.node("node-0") is None
    condition = cluster.calls("set_node_condition")[0]
    assert condition[:3] == ("node-0", CONDITION, "False")
    assert "Xid 79" in condition[4]


async def test_a_memory_fault_resets_the_gpu_instead_of_replacing_the_node() -> None:
    cluster = Cluster()
    resetter = FakeResetter()

    await cluster.agent("node-0", faulty(48), resetter=resetter).run_once()

    assert [s[1] for s in cluster.steps()] == ["stop-routing", "cordon", "drain", "reset"]
    assert resetter.resets == [("node-0", ())]  # the Xid's bus is not an enumerated GPU: all
    assert cluster.node("node-0") is not None
    assert cluster.calls("delete_node") == []


async def test_a_reset_that_fails_falls_back_to_replacing_the_node() -> None:
    cluster = Cluster()
    resetter = FakeResetter(PermanentError("nvidia-smi -r: GPU in use"))
    seen = Observation(devices=(DeviceReading(index=2, ecc_uncorrected=3),))
    fake = FakeGpuProbe()
    fake.script(seen)

    await cluster.agent("node-0", fake, resetter=resetter).run_once()

    assert resetter.resets == [("node-0", (2,))]
    assert cluster.steps()[-2:] == [
        ("node/node-0", "reset", "failed"),
        ("node/node-0", "replace", "ok"),
    ]


async def test_a_pdb_refusal_is_retried_with_backoff_until_the_eviction_passes() -> None:
    cluster = Cluster()
    cluster.kube.refuse_evictions(3, delay=5.0)

    await cluster.agent("node-0", faulty(79)).run_once()

    assert cluster.calls("evict") == [("vllm-0", "models")] * 4
    drain = next(e for e in cluster.audit.entries if e.action == "gpu-health.drain")
    assert (drain.outcome, drain.detail) == ("ok", "evicted 1 pods, 3 refusals")
    assert 5.0 + 10.0 + 20.0 <= cluster.clock.monotonic() < 60.0  # 5 s, doubling
    assert cluster.node("node-0") is None


async def test_a_drain_blocked_by_a_pdb_is_capped_and_the_node_is_kept_cordoned() -> None:
    cluster = Cluster()
    cluster.kube.refuse_evictions(10_000, delay=5.0)
    limits = DrainLimits(timeout_s=120.0, backoff_initial_s=5.0, backoff_max_s=30.0)

    await cluster.agent("node-0", faulty(79), limits=limits).run_once()

    assert cluster.clock.monotonic() == pytest.approx(120.0)
    assert 4 <= len(cluster.calls("evict")) <= 10
    assert cluster.steps()[-1] == ("node/node-0", "drain", "capped")
    assert cluster.calls("delete_node") == []
    node = cluster.node("node-0")
    assert node is not None
    assert node["spec"]["unschedulable"] is True
    assert "GpuDrainCapped" in [e["reason"] for e in cluster.kube.events]


async def test_faults_on_30_percent_of_a_pool_trip_the_breaker_within_the_budget() -> None:
    cluster = Cluster(size=10)
    agents = [cluster.agent(f"node-{i}", faulty(79)) for i in range(3)]

    for agent in agents:
        await agent.run_once()

    touched = {args[0] for args in cluster.calls("cordon")}
    assert touched == {"node-0"}  # budget: 10% of 10 nodes = 1
    assert cluster.ejector.ejected == {"node-0"}
    breaker = cluster.kube.objects[ObjectKey("v1", "ConfigMap", BREAKER_NAME, NAMESPACE)]
    assert breaker["data"]["open"] == "true"
    assert "3 of 10 nodes" in breaker["data"]["reason"]
    assert cluster.registry.get_sample_value("corral_gpu_remediation_breaker_open") == 1.0

    # Everything stays paused, even once the budget would allow more, until a human resets it.
    cluster.clock.advance(7200)
    for agent in agents[1:]:
        await agent.run_once()
    assert {args[0] for args in cluster.calls("cordon")} == {"node-0"}
    held = [e for e in cluster.audit.entries if e.outcome == "held"]
    assert held
    assert "circuit breaker open" in held[-1].detail

    await cluster.breaker.reset()
    assert await cluster.breaker.state() == (False, "")


async def test_an_opted_out_node_is_reported_but_never_touched() -> None:
    cluster = Cluster(node_labels={OPT_OUT_LABEL: "disabled"})

    await cluster.agent("node-0", faulty(79)).run_once()

    assert cluster.calls("cordon") == cluster.calls("evict") == cluster.calls("delete_node") == []
    assert cluster.ejector.ejected == set()
    assert cluster.steps() == [("node/node-0", "drain-replace", "held")]
    assert "opted out" in cluster.audit.entries[0].detail
    assert cluster.calls("set_node_condition")[0][2] == "False"


async def test_dry_run_reports_every_step_and_changes_nothing() -> None:
    cluster = Cluster()

    await cluster.agent("node-0", faulty(79), dry_run=True).run_once()

    assert [(s[1], s[2]) for s in cluster.steps()] == [
        ("stop-routing", "dry-run"),
        ("cordon", "dry-run"),
        ("drain", "dry-run"),
        ("replace", "dry-run"),
    ]
    assert all(e.dry_run for e in cluster.audit.entries)
    assert cluster.ejector.ejected == set()
    mutating = {"cordon", "evict", "delete_node", "apply", "delete", "uncordon"}
    assert mutating.isdisjoint(cluster.kube.verbs())
    assert all(e["message"].startswith("(dry run)") for e in cluster.kube.events)


async def test_an_application_xid_restarts_only_the_workload_that_hit_it() -> None:
    cluster = Cluster()
    uid = cluster.pods["node-0"]["metadata"]["uid"]
    fake = FakeGpuProbe()
    fake.script(Observation(xids=(XidEvent(13, "0000:18:00", pid=7, workload=uid),)))

    decision = await cluster.agent("node-0", fake).run_once()

    assert decision.action is Action.RESTART_WORKLOAD
    assert cluster.calls("evict") == [("vllm-0", "models")]
    assert cluster.calls("cordon") == []
    assert cluster.ejector.ejected == set()


@pytest.mark.parametrize("code", [8, 154])
async def test_an_unknown_xid_only_emits_a_warning_event(code: int) -> None:
    cluster = Cluster()

    await cluster.agent("node-0", faulty(code)).run_once()

    assert [e["reason"] for e in cluster.kube.events] == ["GpuHealthWarning"]
    assert {"cordon", "evict", "delete_node"}.isdisjoint(cluster.kube.verbs())
    assert cluster.audit.entries == []


async def test_throttling_takes_the_node_out_then_back_in_once_healthy_long_enough() -> None:
    cluster = Cluster()
    hot = Observation(devices=(DeviceReading(index=0, throttles=frozenset({Throttle.HW_THERMAL})),))
    fake = FakeGpuProbe()
    fake.script(hot, hot, hot)
    agent = cluster.agent("node-0", fake)

    for _ in range(3):
        decision = await agent.run_once()
        cluster.clock.advance(30)

    assert decision.action is Action.OUT_OF_ROTATION
    assert [s[1] for s in cluster.steps()] == ["stop-routing", "cordon"]
    assert cluster.calls("evict") == []
    assert "GpuOutOfRotation" in [e["reason"] for e in cluster.kube.events]

    await agent.run_once()  # healthy, but too soon to trust it
    assert cluster.calls("uncordon") == []
    cluster.clock.advance(1800)
    await agent.run_once()
    assert cluster.calls("uncordon") == [("node-0", TAINT_KEY)]
    assert cluster.ejector.log[-1] == "restore node-0"


async def test_a_node_acted_on_recently_is_held_by_the_minimum_interval() -> None:
    cluster = Cluster()
    node = cluster.node("node-0")
    assert node is not None
    node["metadata"]["annotations"] = {ACTED_AT: str(cluster.clock.now() - 60)}

    await cluster.agent("node-0", faulty(79)).run_once()

    assert cluster.calls("cordon") == []
    assert "too recently" in cluster.audit.entries[0].detail


async def test_a_held_decision_is_recorded_once_not_every_round() -> None:
    cluster = Cluster(node_labels={OPT_OUT_LABEL: "disabled"})
    fake = FakeGpuProbe()
    fake.script(*[Observation(devices=(DeviceReading(index=0, remap_failed=True),))] * 5)
    agent = cluster.agent("node-0", fake)

    for _ in range(5):
        await agent.run_once()

    assert len(cluster.audit.entries) == 1
    assert len(cluster.calls("set_node_condition")) == 1


# Issue 18: EKS node monitoring agent conditions, and EKS node auto repair owning repair.
def eks_fault(cluster: Cluster, node: str, reason: str = "NvidiaXID79Error") -> None:
    condition = {"type": "AcceleratedHardwareReady", "status": "False", "reason": reason}
    cluster.kube.set_status(ObjectKey("v1", "Node", node), {"conditions": [condition]})


async def test_the_agent_reads_eks_conditions_through_the_kube_port() -> None:
    cluster = Cluster()
    eks_fault(cluster, "node-0")
    healthy = FakeGpuProbe()
    ignored = await cluster.agent("node-1", healthy, eks_node_conditions=True).run_once()
    assert ignored.action is Action.NONE
    decision = await cluster.agent("node-0", FakeGpuProbe(), eks_node_conditions=True).run_once()
    assert decision.action is Action.DRAIN_REPLACE
    assert "Xid 79" in decision.reasons()
    off = await Cluster().agent("node-0", FakeGpuProbe()).run_once()
    assert off.action is Action.NONE  # the source is off unless configured


async def test_when_eks_owns_repair_corral_only_drains() -> None:
    cluster = Cluster()
    eks_fault(cluster, "node-0")
    resetter = FakeResetter()
    agent = cluster.agent(
        "node-0", faulty(79), resetter=resetter, eks_node_conditions=True, repair_owner="eks"
    )
    decision = await agent.run_once()
    assert decision.action is Action.DRAIN
    assert cluster.steps() == [
        ("node/node-0", "stop-routing", "ok"),
        ("node/node-0", "cordon", "ok"),
        ("node/node-0", "drain", "ok"),
    ]
    assert "delete_node" not in cluster.kube.verbs()
    assert resetter.resets == []
    assert cluster.node("node-0") is not None
    events = [args for verb, args in cluster.kube.calls if verb == "emit_event"]
    assert any("GpuRepairHandedToEks" in str(e) for e in events)


async def test_a_memory_fault_is_not_reset_when_eks_owns_repair() -> None:
    cluster = Cluster()
    resetter = FakeResetter()
    agent = cluster.agent("node-0", faulty(48), resetter=resetter, repair_owner="eks")
    assert (await agent.run_once()).action is Action.DRAIN
    assert resetter.resets == []

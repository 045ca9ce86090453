"""The policy table, row by row, from recorded fixtures, plus its invariants."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from corral.health.fake import FakeGpuProbe
from corral.health.observations import DeviceReading, Observation, Throttle, XidEvent
from corral.health.policy import (
    APPLICATION_XIDS,
    FATAL_XIDS,
    MEMORY_XIDS,
    Action,
    Decision,
    History,
    PolicyConfig,
    Rule,
    Verdict,
    decide,
)

FIXTURES = Path(__file__).parents[2] / "fixtures" / "gpu"
EXPECTED: list[dict[str, Any]] = json.loads((FIXTURES / "expected.json").read_text())


def probe_for(fixture: str) -> FakeGpuProbe:
    path = FIXTURES / fixture
    kind = fixture.split("/", maxsplit=1)[0]
    if kind == "nvml":
        return FakeGpuProbe.from_fixtures(nvml=path)
    if kind == "kernel-log":
        return FakeGpuProbe.from_fixtures(kernel_log=path)
    if kind == "neuron":
        return FakeGpuProbe.from_fixtures(neuron=path, expected_devices=16)
    if kind == "eks-node":
        return FakeGpuProbe.from_fixtures(eks_node=path)
    return FakeGpuProbe.from_fixtures(dcgm=path)


def run_rounds(probe: FakeGpuProbe, rounds: int) -> Decision:
    history = History()
    decision = Decision("node-a")
    for i in range(rounds):
        decision, history = decide("node-a", probe.observe(), history, now=1000.0 + 60 * i)
    return decision


def test_every_fixture_is_in_the_expected_table() -> None:
    recorded = {
        str(p.relative_to(FIXTURES))
        for p in FIXTURES.rglob("*")
        if p.is_file() and p.name != "expected.json" and p.parent.name != "unavailable"
    }
    assert recorded == {e["fixture"] for e in EXPECTED}


@pytest.mark.parametrize("case", EXPECTED, ids=[f"{e['fixture']}x{e['rounds']}" for e in EXPECTED])
def test_fixture_maps_to_its_row(case: dict[str, Any]) -> None:
    decision = run_rounds(probe_for(case["fixture"]), case["rounds"])

    assert decision.action == Action(case["action"])
    rules = {f.rule for f in decision.findings if f.action is decision.action}
    if case["rule"] is None:
        assert decision.findings == ()
        assert decision.verdict is Verdict.HEALTHY
    else:
        assert Rule(case["rule"]) in rules


def test_the_table_covers_every_code_the_issue_names() -> None:
    assert {13, 31, 43, 45, 68, 109} == APPLICATION_XIDS
    assert {48, 63, 64, 94, 95} == MEMORY_XIDS
    assert {74, 79, 119, 120} == FATAL_XIDS
    mapped = {
        int(e["fixture"].split("xid-")[1].split(".")[0])
        for e in EXPECTED
        if e["fixture"].startswith("kernel-log/xid-")
    }
    assert mapped >= APPLICATION_XIDS | MEMORY_XIDS | FATAL_XIDS


def gpu(index: int = 0, **fields: Any) -> DeviceReading:
    return DeviceReading(index=index, pci_bus_id=f"00000000:{0x18 + index:02X}:00.0", **fields)


def xid(code: int, workload: str | None = None, index: int = 0) -> XidEvent:
    return XidEvent(code=code, pci_bus_id=f"0000:{0x18 + index:02x}:00", workload=workload)


@pytest.mark.parametrize("code", sorted(APPLICATION_XIDS))
def test_application_xids_never_replace_the_node_however_often(code: int) -> None:
    history = History()
    worst = Action.NONE
    for i in range(50):
        seen = Observation(devices=(gpu(),), xids=(xid(code, workload=f"pod-{i % 7}"),))
        decision, history = decide("n", seen, history, now=100.0 * i)
        worst = max(worst, decision.action, key=lambda a: a.severity)
        assert decision.action is not Action.DRAIN_REPLACE
    assert worst is Action.DRAIN_RESET  # it did escalate, but only to a reset


def test_application_xid_from_one_workload_only_restarts_it() -> None:
    history = History()
    for i in range(10):
        seen = Observation(devices=(gpu(),), xids=(xid(13, workload="pod-a"),))
        decision, history = decide("n", seen, history, now=10.0 * i)
        assert decision.action is Action.RESTART_WORKLOAD
        assert decision.workloads_to_restart == ("pod-a",)


def test_application_xids_escalate_when_they_recur_across_workloads() -> None:
    history = History()
    actions = []
    for i, pod in enumerate(["pod-a", "pod-b", "pod-c"]):
        seen = Observation(devices=(gpu(),), xids=(xid(31, workload=pod),))
        decision, history = decide("n", seen, history, now=10.0 * i)
        actions.append(decision.action)
    assert actions == [Action.RESTART_WORKLOAD, Action.RESTART_WORKLOAD, Action.DRAIN_RESET]
    assert decision.findings[0].rule is Rule.APPLICATION_XID_RECURRING


def test_application_xids_outside_the_window_do_not_escalate() -> None:
    config = PolicyConfig(application_window_s=60.0)
    history = History()
    for i, pod in enumerate(["pod-a", "pod-b", "pod-c"]):
        seen = Observation(devices=(gpu(),), xids=(xid(31, workload=pod),))
        decision, history = decide("n", seen, history, now=100.0 * i, config=config)
    assert decision.action is Action.RESTART_WORKLOAD


def test_anonymous_application_xids_never_count_as_different_workloads() -> None:
    history = History()
    for i in range(10):
        seen = Observation(devices=(gpu(),), xids=(xid(43),))
        decision, history = decide("n", seen, history, now=float(i))
    assert decision.action is Action.RESTART_WORKLOAD
    assert decision.workloads_to_restart == ()


@pytest.mark.parametrize("code", [0, 1, 8, 32, 92, 154, 999])
def test_unknown_codes_only_warn(code: int) -> None:
    history = History()
    for i in range(20):
        decision, history = decide("n", Observation(xids=(xid(code),)), history, now=float(i))
        assert decision.action is Action.WARN
        assert decision.verdict is Verdict.DEGRADED


def test_throttling_becomes_out_of_rotation_only_when_repeated_within_the_window() -> None:
    throttled = Observation(devices=(gpu(throttles=frozenset({Throttle.HW_THERMAL})),))
    history = History()
    decision, history = decide("n", throttled, history, now=0.0)
    decision, history = decide("n", throttled, history, now=700.0)  # first one aged out
    assert decision.action is Action.NONE
    decision, history = decide("n", throttled, history, now=800.0)
    decision, history = decide("n", throttled, history, now=900.0)
    assert decision.action is Action.OUT_OF_ROTATION


def test_the_strongest_finding_wins_and_reasons_name_it() -> None:
    seen = Observation(
        devices=(gpu(0, ecc_uncorrected=1), gpu(1)), xids=(xid(79, index=1), xid(13, "p"))
    )
    decision, _ = decide("n", seen, History(), now=0.0)
    assert decision.action is Action.DRAIN_REPLACE
    assert decision.reasons().startswith("gpu1: Xid 79")
    assert {f.device for f in decision.findings} == {"gpu0", "gpu1"}


def test_xid_on_an_unknown_bus_names_the_bus() -> None:
    decision, _ = decide("n", Observation(xids=(XidEvent(79, "0000:ee:00"),)), History(), 0.0)
    assert decision.findings[0].device == "pci:0000:ee:00"


def test_decide_does_not_change_the_history_it_was_given() -> None:
    history = History()
    seen = Observation(devices=(gpu(throttles=frozenset({Throttle.HW_SLOWDOWN})),))
    _, new = decide("n", seen, history, now=0.0)
    assert history == History()
    assert len(new.throttles) == 1


# Issue 18: the EKS node monitoring agent's conditions go through the same rows.
def test_every_eks_condition_type_has_a_fixture() -> None:
    import yaml

    from corral.health.eks_node_health import CONDITIONS

    covered = set()
    for case in EXPECTED:
        if case["fixture"].startswith("eks-node/") and case["rule"] is not None:
            node = yaml.safe_load((FIXTURES / case["fixture"]).read_text())
            covered |= {c["type"] for c in node["status"]["conditions"] if c["status"] == "False"}
    assert covered == set(CONDITIONS)


def test_an_xid_reported_by_eks_maps_like_the_same_xid_from_the_kernel_log() -> None:
    from corral.health.observations import NodeCondition

    for code in sorted(APPLICATION_XIDS | MEMORY_XIDS | FATAL_XIDS):
        eks = Observation(
            node_conditions=(
                NodeCondition("AcceleratedHardwareReady", "False", f"NvidiaXID{code}Error"),
            )
        )
        kernel = Observation(xids=(XidEvent(code=code),))
        from_eks, _ = decide("n", eks, History(), now=0.0)
        from_kernel, _ = decide("n", kernel, History(), now=0.0)
        assert from_eks.action is from_kernel.action, code
        assert {f.rule for f in from_eks.findings} == {f.rule for f in from_kernel.findings}


def test_handing_repair_to_eks_turns_repairs_into_drains_and_keeps_the_rest() -> None:
    from corral.health.observations import NodeCondition
    from corral.health.policy import hand_repair_to

    kernel = NodeCondition("KernelReady", "False", "SoftLockup")
    network = NodeCondition("NetworkingReady", "False", "IPAMDNotRunning")
    decision, _ = decide("n", Observation(node_conditions=(kernel, network)), History(), now=0.0)
    assert decision.action is Action.DRAIN_REPLACE
    handed = hand_repair_to(decision, "eks")
    assert handed.action is Action.DRAIN
    assert {f.action for f in handed.findings} == {Action.DRAIN, Action.OUT_OF_ROTATION}
    assert hand_repair_to(decision, "corral") == decision
    assert Action.OUT_OF_ROTATION.severity < Action.DRAIN.severity < Action.DRAIN_RESET.severity

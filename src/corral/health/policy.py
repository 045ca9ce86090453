"""The GPU remediation policy: a pure function from observations and history to a decision.

    signal                                               rule                       action
    ---------------------------------------------------  -------------------------  ----------------
    Xid 13, 31, 43, 45, 68, 109 (application-level)      application-xid            restart-workload
      ... on one GPU from >= N workloads in the window   application-xid-recurring  drain-reset
    Xid 48 (double-bit ECC), 63/64 (row remap recorded/  memory-error               drain-reset
      failed), 94/95 (contained/uncontained ECC); NVML:
      uncorrected ECC, remap pending, pages pending
    Xid 74 (NVLink), 79 (off the bus), 119/120 (GSP);    fatal-hardware             drain-replace
      NVML: remap failure, GPU lost, GPUs missing
    hardware slowdown, thermal or power-brake throttle   repeated-throttle          out-of-rotation
      in >= M probe rounds within the window
    Neuron hardware, HBM or SRAM uncorrectable errors;   neuron-hardware            drain-replace
      Neuron devices missing
    any other Xid code                                   unknown-xid                warn
    a ``dcgmi health`` incident                          dcgm-incident              warn
    throttling seen fewer than M times                   throttled                  none

The EKS node monitoring agent's conditions (``eks_node_health``), when False, map onto the same
rows: AcceleratedHardwareReady with reason NvidiaXID<code>Error is that Xid; its other reasons
follow ``ACCELERATED_REASONS`` (double-bit ECC and page retirement: memory-error; NVLink, device
count: fatal-hardware; thermal, power: repeated-throttle; DCGM: dcgm-incident; Neuron
uncorrectable: neuron-hardware); and

    AcceleratedHardwareReady False, any other reason     eks-accelerated            out-of-rotation
    KernelReady False                                    eks-kernel                 drain-replace
    NetworkingReady False                                eks-networking             out-of-rotation
    StorageReady False                                   eks-storage                out-of-rotation

Actions, weakest first: none; warn (a Warning event only); restart-workload (evict the pod that
hit the Xid, never a node action); out-of-rotation (stop routing, cordon, alert); drain-reset
(stop routing, cordon, drain, reset the GPU or reboot); drain-replace (stop routing, cordon,
drain, delete the node so Karpenter provisions a fresh one). A node gets its strongest action.
Application Xids never lead to drain-replace; unknown codes never lead past warn.

Who repairs: with ``repair_owner`` eks (EKS node auto repair on the node's pool), ``hand_repair_to``
turns drain-reset and drain-replace into drain (stop routing, cordon, drain the replicas): EKS
reboots or replaces the node itself, and Corral never starts a second, competing repair.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import StrEnum

from corral.health.eks_node_health import (
    ACCELERATED_HARDWARE,
    KERNEL,
    NETWORKING,
    SOURCE,
    STORAGE,
    xid_of,
)
from corral.health.observations import DeviceReading, NodeCondition, Observation, XidEvent

APPLICATION_XIDS = frozenset({13, 31, 43, 45, 68, 109})
MEMORY_XIDS = frozenset({48, 63, 64, 94, 95})
FATAL_XIDS = frozenset({74, 79, 119, 120})


class Action(StrEnum):
    """What to do about a node, weakest first (the order of declaration is the severity)."""

    NONE = "none"
    WARN = "warn"
    RESTART_WORKLOAD = "restart-workload"
    OUT_OF_ROTATION = "out-of-rotation"
    DRAIN = "drain"
    DRAIN_RESET = "drain-reset"
    DRAIN_REPLACE = "drain-replace"

    @property
    def severity(self) -> int:
        return list(Action).index(self)

    @property
    def acts_on_node(self) -> bool:
        """True for actions that take the node out of service (they count against budgets)."""
        return self.severity >= Action.OUT_OF_ROTATION.severity


class Rule(StrEnum):
    """The row of the policy table a finding comes from."""

    APPLICATION_XID = "application-xid"
    APPLICATION_XID_RECURRING = "application-xid-recurring"
    MEMORY_ERROR = "memory-error"
    FATAL_HARDWARE = "fatal-hardware"
    THROTTLED_ONCE = "throttled"
    REPEATED_THROTTLE = "repeated-throttle"
    NEURON_HARDWARE = "neuron-hardware"
    UNKNOWN_XID = "unknown-xid"
    DCGM_INCIDENT = "dcgm-incident"
    EKS_ACCELERATED = "eks-accelerated"
    EKS_KERNEL = "eks-kernel"
    EKS_NETWORKING = "eks-networking"
    EKS_STORAGE = "eks-storage"


ACCELERATED_REASONS: dict[str, tuple[Rule, Action]] = {
    "NvidiaDoubleBitError": (Rule.MEMORY_ERROR, Action.DRAIN_RESET),
    "NvidiaPageRetirement": (Rule.MEMORY_ERROR, Action.DRAIN_RESET),
    "NvidiaNVLinkError": (Rule.FATAL_HARDWARE, Action.DRAIN_REPLACE),
    "NvidiaDeviceCountMismatch": (Rule.FATAL_HARDWARE, Action.DRAIN_REPLACE),
    "NvidiaThermalError": (Rule.REPEATED_THROTTLE, Action.OUT_OF_ROTATION),
    "NvidiaPowerError": (Rule.REPEATED_THROTTLE, Action.OUT_OF_ROTATION),
    "DCGMHealthCode": (Rule.DCGM_INCIDENT, Action.WARN),
    "DCGMError": (Rule.DCGM_INCIDENT, Action.WARN),
    "DCGMDiagnosticFailure": (Rule.DCGM_INCIDENT, Action.WARN),
    "NeuronHBMUncorrectableError": (Rule.NEURON_HARDWARE, Action.DRAIN_REPLACE),
    "NeuronSRAMUncorrectableError": (Rule.NEURON_HARDWARE, Action.DRAIN_REPLACE),
    "NeuronNCUncorrectableError": (Rule.NEURON_HARDWARE, Action.DRAIN_REPLACE),
    "NeuronDMAError": (Rule.NEURON_HARDWARE, Action.DRAIN_REPLACE),
}
"""AcceleratedHardwareReady reasons (EKS user guide, "Detect node health issues and enable
automatic node repair", NVIDIA and Neuron tables) onto the rows NVML/DCGM/Neuron findings use."""

NODE_CONDITION_ROWS: dict[str, tuple[Rule, Action]] = {
    KERNEL: (Rule.EKS_KERNEL, Action.DRAIN_REPLACE),
    NETWORKING: (Rule.EKS_NETWORKING, Action.OUT_OF_ROTATION),
    STORAGE: (Rule.EKS_STORAGE, Action.OUT_OF_ROTATION),
}
"""The node-level conditions: a kernel fault needs a fresh node; a networking or storage fault
takes the node out of rotation and alerts (the replica cannot be trusted, the GPUs are fine)."""


class Verdict(StrEnum):
    HEALTHY = "healthy"
    DEGRADED = "degraded"
    FAULTY = "faulty"


@dataclass(frozen=True, slots=True)
class PolicyConfig:
    """The policy's thresholds."""

    escalate_after_workloads: int = 3
    """Different workloads hitting application Xids on one GPU before it is suspected."""
    application_window_s: float = 3600.0
    """How far back application Xids count towards escalation."""
    throttle_rounds: int = 3
    """Probe rounds with hardware throttling, within the window, that mean 'repeated'."""
    throttle_window_s: float = 600.0
    """How far back throttled rounds count."""


@dataclass(frozen=True, slots=True)
class Finding:
    """One signal mapped to one row of the table."""

    rule: Rule
    action: Action
    device: str
    detail: str
    xid: int | None = None
    workload: str | None = None


@dataclass(frozen=True, slots=True)
class Decision:
    """What the policy wants done about one node, with the findings that justify it."""

    node: str
    findings: tuple[Finding, ...] = ()

    @property
    def action(self) -> Action:
        return max((f.action for f in self.findings), key=_severity, default=Action.NONE)

    @property
    def verdict(self) -> Verdict:
        return verdict_of(self.findings)

    @property
    def workloads_to_restart(self) -> tuple[str, ...]:
        found = (f.workload for f in self.findings if f.action is Action.RESTART_WORKLOAD)
        return tuple(dict.fromkeys(w for w in found if w))

    def reasons(self) -> str:
        """The findings behind the action, for events, conditions and the audit log."""
        strongest = [f for f in self.findings if f.action is self.action]
        return "; ".join(f"{f.device}: {f.detail}" for f in strongest) or "all devices healthy"

    def for_device(self, device: str) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.device == device)


@dataclass(frozen=True, slots=True)
class ApplicationXidSeen:
    at: float
    device: str
    workload: str


@dataclass(frozen=True, slots=True)
class ThrottleSeen:
    at: float
    device: str


@dataclass(frozen=True, slots=True)
class History:
    """What earlier rounds saw, for judging recurrence; replaced each round, never mutated."""

    application_xids: tuple[ApplicationXidSeen, ...] = ()
    throttles: tuple[ThrottleSeen, ...] = field(default=())


def verdict_of(findings: tuple[Finding, ...]) -> Verdict:
    """faulty when any finding takes the node out, degraded when anything was found."""
    if any(f.action.acts_on_node for f in findings):
        return Verdict.FAULTY
    return Verdict.DEGRADED if findings else Verdict.HEALTHY


def decide(
    node: str, seen: Observation, history: History, now: float, config: PolicyConfig | None = None
) -> tuple[Decision, History]:
    """The decision for ``node`` from this round's observation, and the history to keep."""
    config = config or PolicyConfig()
    history = _prune(history, now, config)
    history = _remember(seen, history, now)
    findings = [
        *_count_findings(seen),
        *(f for d in seen.devices for f in _device_findings(d)),
        *_throttle_findings(seen.devices, history, config),
        *(_xid_finding(x, seen.devices, history, config) for x in seen.xids),
        *_neuron_findings(seen),
        *(
            Finding(Rule.DCGM_INCIDENT, Action.WARN, _gpu(i.gpu), f"DCGM {i.system}: {i.message}")
            for i in seen.dcgm
        ),
        *(
            _condition_finding(c, seen.devices, history, config)
            for c in seen.node_conditions
            if c.status == "False"
        ),
    ]
    return Decision(node, tuple(findings)), history


def hand_repair_to(decision: Decision, owner: str) -> Decision:
    """With ``owner`` eks, repairs become drains: EKS node auto repair reboots or replaces the
    node once it is drained; Corral only moves traffic and replicas off it."""
    if owner != "eks":
        return decision
    repairs = (Action.DRAIN_RESET, Action.DRAIN_REPLACE)
    findings = tuple(
        replace(f, action=Action.DRAIN, detail=f"{f.detail} (EKS node auto repair repairs it)")
        if f.action in repairs
        else f
        for f in decision.findings
    )
    return Decision(decision.node, findings)


def _condition_finding(
    c: NodeCondition, devices: tuple[DeviceReading, ...], history: History, config: PolicyConfig
) -> Finding:
    detail = f"{c.type}=False {c.reason}" + (f": {c.message}" if c.message else "")
    if c.type != ACCELERATED_HARDWARE:
        rule, action = NODE_CONDITION_ROWS[c.type]
        return Finding(rule, action, "node", detail)
    code = xid_of(c.reason)
    if code is not None:
        event = XidEvent(code=code, message=f"{c.reason} from EKS", source=SOURCE)
        return _xid_finding(event, devices, history, config)
    rule, action = ACCELERATED_REASONS.get(c.reason, (Rule.EKS_ACCELERATED, Action.OUT_OF_ROTATION))
    return Finding(rule, action, "node", detail)


def device_name(index: int | None, accelerator: str = "nvidia") -> str:
    """How findings name a device: gpu0, neuron3, or node for the machine as a whole."""
    if index is None or index < 0:
        return "node"
    return f"{'neuron' if accelerator == 'neuron' else 'gpu'}{index}"


def _severity(action: Action) -> int:
    return action.severity


def _gpu(index: int | None) -> str:
    return device_name(index)


def _count_findings(seen: Observation) -> list[Finding]:
    if seen.expected_devices is None or seen.device_count is None:
        return []
    if seen.device_count >= seen.expected_devices:
        return []
    what = "Neuron devices" if seen.accelerator == "neuron" else "GPUs"
    rule = Rule.NEURON_HARDWARE if seen.accelerator == "neuron" else Rule.FATAL_HARDWARE
    detail = f"{seen.device_count} {what} present, {seen.expected_devices} expected"
    return [Finding(rule, Action.DRAIN_REPLACE, "node", detail)]


def _device_findings(d: DeviceReading) -> list[Finding]:
    name = _gpu(d.index)
    found: list[Finding] = []
    if d.lost:
        found.append(Finding(Rule.FATAL_HARDWARE, Action.DRAIN_REPLACE, name, "GPU is lost"))
    if d.remap_failed:
        found.append(
            Finding(Rule.FATAL_HARDWARE, Action.DRAIN_REPLACE, name, "row remapping failed")
        )
    memory = [
        (bool(d.ecc_uncorrected), f"{d.ecc_uncorrected} uncorrectable ECC errors"),
        (d.remap_pending, "row remap pending (needs a GPU reset)"),
        (d.retired_pages_pending, "page retirement pending (needs a GPU reset)"),
    ]
    found.extend(
        Finding(Rule.MEMORY_ERROR, Action.DRAIN_RESET, name, text) for hit, text in memory if hit
    )
    return found


def _throttle_findings(
    devices: tuple[DeviceReading, ...], history: History, config: PolicyConfig
) -> list[Finding]:
    found: list[Finding] = []
    for d in devices:
        if not d.throttles:
            continue
        name = _gpu(d.index)
        rounds = sum(1 for t in history.throttles if t.device == name)
        reasons = ", ".join(sorted(d.throttles))
        if rounds >= config.throttle_rounds:
            detail = f"throttled ({reasons}) in {rounds} rounds"
            found.append(Finding(Rule.REPEATED_THROTTLE, Action.OUT_OF_ROTATION, name, detail))
        else:
            found.append(Finding(Rule.THROTTLED_ONCE, Action.NONE, name, f"throttled ({reasons})"))
    return found


def _xid_finding(
    x: XidEvent, devices: tuple[DeviceReading, ...], history: History, config: PolicyConfig
) -> Finding:
    name = _device_of(x.pci_bus_id, devices)
    detail = f"Xid {x.code}" + (f" ({x.message})" if x.message else "")
    if x.code in FATAL_XIDS:
        return Finding(Rule.FATAL_HARDWARE, Action.DRAIN_REPLACE, name, detail, x.code)
    if x.code in MEMORY_XIDS:
        return Finding(Rule.MEMORY_ERROR, Action.DRAIN_RESET, name, detail, x.code)
    if x.code not in APPLICATION_XIDS:
        return Finding(Rule.UNKNOWN_XID, Action.WARN, name, f"unknown {detail}", x.code)
    workloads = {a.workload for a in history.application_xids if a.device == name}
    if len(workloads) >= config.escalate_after_workloads:
        detail = f"{detail}; application Xids from {len(workloads)} different workloads"
        return Finding(
            Rule.APPLICATION_XID_RECURRING, Action.DRAIN_RESET, name, detail, x.code, x.workload
        )
    return Finding(Rule.APPLICATION_XID, Action.RESTART_WORKLOAD, name, detail, x.code, x.workload)


def _neuron_findings(seen: Observation) -> list[Finding]:
    return [
        Finding(
            Rule.NEURON_HARDWARE,
            Action.DRAIN_REPLACE,
            device_name(e.device, "neuron"),
            f"{e.count} {e.kind.value.replace('_', ' ')} errors",
        )
        for e in seen.neuron_errors
        if e.count > 0
    ]


def _device_of(pci_bus_id: str, devices: tuple[DeviceReading, ...]) -> str:
    wanted = _bus_device(pci_bus_id)
    for d in devices:
        if wanted is not None and _bus_device(d.pci_bus_id) == wanted:
            return _gpu(d.index)
    return f"pci:{pci_bus_id}" if pci_bus_id else "node"


def _bus_device(pci: str) -> tuple[int, int] | None:
    """(bus, device) from ``0000:3b:00`` (kernel log) or ``00000000:3B:00.0`` (NVML)."""
    parts = pci.split(".", maxsplit=1)[0].split(":")
    if len(parts) < 2:
        return None
    try:
        return int(parts[-2], 16), int(parts[-1], 16)
    except ValueError:
        return None


def _prune(history: History, now: float, config: PolicyConfig) -> History:
    return History(
        application_xids=tuple(
            a for a in history.application_xids if now - a.at <= config.application_window_s
        ),
        throttles=tuple(t for t in history.throttles if now - t.at <= config.throttle_window_s),
    )


def _remember(seen: Observation, history: History, now: float) -> History:
    fresh_xids = tuple(
        ApplicationXidSeen(now, _device_of(x.pci_bus_id, seen.devices), x.workload)
        for x in seen.xids
        if x.code in APPLICATION_XIDS and x.workload
    )
    fresh_throttles = tuple(ThrottleSeen(now, _gpu(d.index)) for d in seen.devices if d.throttles)
    return History(
        application_xids=history.application_xids + fresh_xids,
        throttles=history.throttles + fresh_throttles,
    )

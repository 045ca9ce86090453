"""Simulate a spec on a trace: its runtime's autoscaler, then the oracle and static references."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from corral.control.planner.instances import InstanceType, PriceTable
from corral.control.planner.trace import TraceRequest
from corral.control.render.autoscaling import wants_hpa
from corral.control.render.rayservice import render_rayservice
from corral.control.spec import DeploymentSpec
from corral.errors import ConfigError
from corral.simulation.autoscalers import Autoscaler
from corral.simulation.fleet import CapacitySettings, Fleet
from corral.simulation.hpa import HorizontalPodAutoscaler, behaviour_of
from corral.simulation.references import References, ScheduleAutoscaler, references
from corral.simulation.replica import ReplicaModel, replica_model
from corral.simulation.report import Figures, SloTarget, figures
from corral.simulation.simulator import (
    LoopOutcome,
    LoopSettings,
    Simulation,
    TimelinePoint,
    horizon_of,
)
from corral.simulation.startup import StartupModel, startup_model

HPA = "hpa"
POLICIES = ("ray-default", "corral-llm-aware", HPA)
"""Autoscalers the simulator can run; the spec's runtime picks one by default."""

_NO_STARTUP = StartupModel(0.0, 0.0, 0.0, 0.0)


@dataclass(frozen=True, slots=True)
class Scenario:
    """What to simulate besides the spec and the trace."""

    policy: str | None = None
    """None: the autoscaler the spec's runtime renders (rayservice: ray-default; deployment:
    hpa)."""
    slo: SloTarget = field(default_factory=SloTarget)
    spot_interruptions_per_hour: float = 0.0
    spot_notice_s: float = 120.0
    spot_unavailable_share: float = 0.0
    utilisation: float | None = None
    """The references' planning utilisation; None: the planner's default."""
    node_idle_s: float | None = None
    """Override of an empty node's life (for tuning sweeps); None: as rendered."""
    seed: int = 0


@dataclass(frozen=True, slots=True)
class SimulationReport:
    """The run and its two references."""

    spec_name: str
    policy: str
    instance: str
    devices_per_replica: int
    run: Figures
    oracle: Figures
    static: Figures
    references: References
    spot_share: float
    nodes_launched: int
    timeline: list[TimelinePoint]

    @property
    def static_on_demand_cost_usd(self) -> float:
        return self.static.cost_usd

    def as_json(self, *, per_minute: bool = False) -> dict[str, object]:
        run, oracle, static = self.run, self.oracle, self.static
        return {
            "spec": self.spec_name,
            "policy": self.policy,
            "instance": self.instance,
            "devices_per_replica": self.devices_per_replica,
            "gpu_hours": round(run.gpu_hours, 4),
            "oracle_gpu_hours": round(oracle.gpu_hours, 4),
            "static_gpu_hours": round(static.gpu_hours, 4),
            "gpu_hours_vs_oracle": _ratio(run.gpu_hours, oracle.gpu_hours),
            "gpu_hours_vs_static": _ratio(run.gpu_hours, static.gpu_hours),
            "slo_minutes_share": round(run.slo_minutes_share, 4),
            "cost_usd": round(run.cost_usd, 4),
            "static_on_demand_cost_usd": round(static.cost_usd, 4),
            "oracle_on_demand_cost_usd": round(oracle.cost_usd, 4),
            "saving_vs_static_on_demand": round(1 - _ratio(run.cost_usd, static.cost_usd), 4),
            "spot_share": round(self.spot_share, 4),
            "nodes_launched": self.nodes_launched,
            "run": run.as_json(per_minute=per_minute),
            "oracle": oracle.as_json(per_minute=per_minute),
            "static": static.as_json(per_minute=per_minute),
            "oracle_replicas_per_minute": self.references.per_minute,
            "static_replicas": self.references.static_replicas,
        }


def _ratio(a: float, b: float) -> float:
    return round(a / b, 4) if b else float("nan")


@dataclass(frozen=True, slots=True)
class _Setup:
    """What every run of one simulation shares."""

    spec: DeploymentSpec
    trace: Sequence[TraceRequest]
    table: PriceTable
    model: ReplicaModel
    instance: InstanceType
    scenario: Scenario

    def rng(self) -> random.Random:
        return random.Random(self.scenario.seed)  # noqa: S311 - a seeded simulation draw

    def loop(self, initial_replicas: int) -> LoopSettings:
        return LoopSettings(
            self.spec.replicas.max_ongoing_requests, initial_replicas, seed=self.scenario.seed
        )


def simulate(
    spec: DeploymentSpec,
    trace: Sequence[TraceRequest],
    table: PriceTable,
    scenario: Scenario | None = None,
) -> SimulationReport:
    """Run the spec's autoscaler on the trace, and the oracle and static peak beside it."""
    setup = _setup(spec, trace, table, scenario)
    refs = references(spec, trace, setup.scenario.utilisation)
    policy = setup.scenario.policy or default_policy(spec)
    run, outcome = _run(setup, policy, max(horizon_of(trace), len(refs.per_minute) * 60.0))
    static = [refs.static_replicas] * len(refs.per_minute)
    return SimulationReport(
        spec_name=spec.name,
        policy=policy,
        instance=setup.instance.name,
        devices_per_replica=setup.model.devices,
        run=run,
        oracle=_schedule_figures(setup, "oracle", refs.per_minute),
        static=_schedule_figures(setup, "static", static),
        references=refs,
        spot_share=outcome.spot_share,
        nodes_launched=outcome.nodes_launched,
        timeline=outcome.timeline,
    )


def simulate_policy(
    spec: DeploymentSpec,
    trace: Sequence[TraceRequest],
    table: PriceTable,
    scenario: Scenario | None = None,
) -> Figures:
    """Only the spec's autoscaler, without the references (for sweeps over settings)."""
    setup = _setup(spec, trace, table, scenario)
    horizon = max(horizon_of(trace), len(references(spec, trace).per_minute) * 60.0)
    return _run(setup, setup.scenario.policy or default_policy(spec), horizon)[0]


def simulate_schedule(
    spec: DeploymentSpec,
    trace: Sequence[TraceRequest],
    table: PriceTable,
    per_minute: list[int],
    scenario: Scenario | None = None,
) -> Figures:
    """Latency of a fixed replica schedule with zero start-up (the references' way), charged
    its replica GPU-hours on demand."""
    return _schedule_figures(_setup(spec, trace, table, scenario), "schedule", per_minute)


def _setup(
    spec: DeploymentSpec,
    trace: Sequence[TraceRequest],
    table: PriceTable,
    scenario: Scenario | None,
) -> _Setup:
    model = replica_model(spec)
    instance = instance_for(spec, table, model)
    return _Setup(spec, trace, table, model, instance, scenario or Scenario())


def _schedule_figures(setup: _Setup, name: str, per_minute: list[int]) -> Figures:
    """A schedule's latency, charged its replica-minutes at the on-demand price per replica."""
    replica_hours = sum(per_minute) / 60
    usd = replica_hours * setup.instance.on_demand_usd_per_hour / slots_per_node(setup)
    figures = _reference(setup, name, per_minute)
    return replace(figures, gpu_hours=replica_hours * setup.model.devices, cost_usd=usd)


def _run(setup: _Setup, policy: str, horizon: float) -> tuple[Figures, LoopOutcome]:
    spec, scenario = setup.spec, setup.scenario
    capacity = CapacitySettings(
        spot_first=spec.capacity.capacity_types == "spot-first",
        spot_interruptions_per_hour=scenario.spot_interruptions_per_hour,
        spot_notice_s=scenario.spot_notice_s,
        spot_unavailable_share=scenario.spot_unavailable_share,
        node_idle_s=(
            scenario.node_idle_s
            if scenario.node_idle_s is not None
            else node_idle_s(spec, setup.table, policy)
        ),
    )
    fleet = Fleet(
        setup.model,
        startup=startup_model(spec, setup.instance.family),
        instance=setup.instance,
        prices=setup.table,
        capacity=capacity,
        rng=setup.rng(),
    )
    autoscaler = make_autoscaler(spec, policy)
    outcome = Simulation(
        setup.trace, fleet, autoscaler, setup.loop(spec.replicas.min), horizon
    ).run()
    run = figures(
        policy, outcome, scenario.slo, gpu_hours=outcome.device_hours, cost_usd=outcome.cost_usd
    )
    return run, outcome


def slots_per_node(setup: _Setup) -> int:
    """Replicas one instance holds."""
    return max(1, setup.instance.count // setup.model.devices)


def default_policy(spec: DeploymentSpec) -> str:
    """The autoscaler ``corral deploy`` renders for the spec's runtime."""
    return HPA if spec.engine.runtime == "deployment" else "ray-default"


def make_autoscaler(spec: DeploymentSpec, policy: str) -> Autoscaler:
    """The named autoscaler configured from the spec as ``corral deploy`` renders it."""
    if policy == HPA:
        if not wants_hpa(spec):  # min == max: the Deployment keeps its size
            return ScheduleAutoscaler("fixed", [spec.replicas.min])
        return HorizontalPodAutoscaler(behaviour_of(spec))
    if policy not in POLICIES:
        raise ConfigError(f"unknown autoscaling policy {policy!r}; allowed: {', '.join(POLICIES)}")
    from corral.simulation.ray_serve import RayServeAutoscaler

    return RayServeAutoscaler(spec, policy)


def instance_for(spec: DeploymentSpec, table: PriceTable, model: ReplicaModel) -> InstanceType:
    """The cheapest instance per replica for the spec's accelerator (what Karpenter launches)."""
    found = [
        i
        for i in table.for_accelerator(spec.accelerator.type, model.devices)
        if spec.capacity.instance_types is None or i.name in spec.capacity.instance_types
    ]
    if not found:
        raise ConfigError(
            f"the price table has no instance with {model.devices}× {spec.accelerator.type}"
            " (within capacity.instance_types); add one or pass --prices"
        )
    return min(found, key=lambda i: (i.on_demand_usd_per_hour / (i.count // model.devices), i.name))


def node_idle_s(spec: DeploymentSpec, table: PriceTable, policy: str) -> float:
    """How long an empty node lives: the Ray autoscaler's idle timeout for the worker pod (Ray
    runtimes) and then Karpenter's ``consolidateAfter``, as rendered."""
    consolidate = _seconds(spec.capacity.consolidate_after)
    if policy == HPA:
        return consolidate
    cluster = render_rayservice(spec, table)["spec"]["rayClusterConfig"]
    return consolidate + float(cluster["autoscalerOptions"]["idleTimeoutSeconds"])


def _seconds(duration: str) -> float:
    unit = {"s": 1, "m": 60, "h": 3600}[duration[-1]]
    return float(duration[:-1]) * unit


def _reference(setup: _Setup, name: str, per_minute: list[int]) -> Figures:
    """Latency of a replica schedule with zero start-up and nodes that vanish when empty."""
    fleet = Fleet(
        setup.model,
        startup=_NO_STARTUP,
        instance=setup.instance,
        prices=setup.table,
        capacity=CapacitySettings(spot_first=False, node_idle_s=0.0),
        rng=setup.rng(),
    )
    first = per_minute[0] if per_minute else 0
    autoscaler = ScheduleAutoscaler(name, per_minute)
    horizon = len(per_minute) * 60.0
    outcome = Simulation(setup.trace, fleet, autoscaler, setup.loop(first), horizon).run()
    return figures(name, outcome, setup.scenario.slo, gpu_hours=0.0, cost_usd=0.0)

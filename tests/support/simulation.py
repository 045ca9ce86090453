"""Small replica models and fleets the simulation tests share."""

from __future__ import annotations

import random

from corral.control.planner.instances import PriceTable, load_price_table
from corral.control.planner.trace import TraceRequest
from corral.simulation.autoscalers import Autoscaler
from corral.simulation.fleet import CapacitySettings, Fleet
from corral.simulation.replica import ReplicaModel
from corral.simulation.simulator import LoopOutcome, LoopSettings, Simulation
from corral.simulation.startup import StartupModel

TABLE: PriceTable = load_price_table()
G6 = next(i for i in TABLE.instances if i.name == "g6.xlarge")
NO_STARTUP = StartupModel(0.0, 0.0, 0.0, 0.0)


def model(**overrides: float) -> ReplicaModel:
    """1,000 prefill tokens/s; a decode step of 10 ms plus 1 µs per KV token."""
    fields: dict[str, float] = {
        "devices": 1,
        "prefill_tokens_per_s": 1000.0,
        "step_base_s": 0.01,
        "step_s_per_kv_token": 1e-6,
        "max_num_seqs": 4,
        "kv_capacity_tokens": 100_000,
        "max_batched_tokens": 2048,
    }
    fields.update(overrides)
    return ReplicaModel(
        devices=int(fields["devices"]),
        prefill_tokens_per_s=fields["prefill_tokens_per_s"],
        step_base_s=fields["step_base_s"],
        step_s_per_kv_token=fields["step_s_per_kv_token"],
        max_num_seqs=int(fields["max_num_seqs"]),
        kv_capacity_tokens=int(fields["kv_capacity_tokens"]),
        max_batched_tokens=int(fields["max_batched_tokens"]),
    )


def run(
    trace: list[TraceRequest],
    autoscaler: Autoscaler,
    *,
    replica: ReplicaModel | None = None,
    startup: StartupModel = NO_STARTUP,
    capacity: CapacitySettings | None = None,
    initial: int = 1,
    max_ongoing: int = 10**6,
    horizon_s: float | None = None,
) -> LoopOutcome:
    fleet = Fleet(
        replica or model(),
        startup=startup,
        instance=G6,
        prices=TABLE,
        capacity=capacity or CapacitySettings(spot_first=False, node_idle_s=0.0),
        rng=random.Random(7),
    )
    horizon = horizon_s if horizon_s is not None else max(r.at_s for r in trace) + 1.0
    settings = LoopSettings(max_ongoing_requests=max_ongoing, initial_replicas=initial)
    return Simulation(trace, fleet, autoscaler, settings, horizon).run()

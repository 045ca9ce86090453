"""The capacity plan for a spec: memory need, instance options, throughput and $ per 1M tokens."""

from __future__ import annotations

from dataclasses import dataclass

from corral.control.accelerators import ACCELERATORS
from corral.control.planner.fit import FitOption, spec_options
from corral.control.planner.instances import PriceTable, load_price_table
from corral.control.planner.memory import MemoryNeed, memory_need
from corral.control.planner.throughput import Throughput, estimate_throughput
from corral.control.spec import DeploymentSpec
from corral.errors import ConfigError


@dataclass(frozen=True, slots=True)
class Workload:
    """The traffic the plan is for."""

    prompt_tokens: float = 1024
    output_tokens: float = 256
    utilisation: float = 0.7
    """Share of a replica's capacity to plan for (head-room for bursts)."""
    managed_usd_per_million_in: float | None = None
    managed_usd_per_million_out: float | None = None

    @property
    def managed_usd_per_million(self) -> float | None:
        """A managed API's price per 1M tokens of this workload's prompt/output mix."""
        if self.managed_usd_per_million_in is None or self.managed_usd_per_million_out is None:
            return None
        total = self.prompt_tokens + self.output_tokens
        return (
            self.prompt_tokens * self.managed_usd_per_million_in
            + self.output_tokens * self.managed_usd_per_million_out
        ) / total


@dataclass(frozen=True, slots=True)
class PricedOption:
    """A fitting option with its throughput and costs."""

    option: FitOption
    throughput: Throughput
    requests_per_s: float
    """Requests per second one replica serves at the planned utilisation."""
    tokens_per_hour: float
    usd_per_hour_on_demand: float
    usd_per_hour_spot: float

    @property
    def usd_per_million_on_demand(self) -> float:
        return self.usd_per_hour_on_demand / self.tokens_per_hour * 1e6

    @property
    def usd_per_million_spot(self) -> float:
        return self.usd_per_hour_spot / self.tokens_per_hour * 1e6


@dataclass(frozen=True, slots=True)
class Plan:
    """Everything ``corral plan`` reports."""

    need: MemoryNeed
    options: list[PricedOption]
    workload: Workload
    prices_as_of: str


def price_option(
    option: FitOption, spec: DeploymentSpec, workload: Workload, table: PriceTable
) -> PricedOption:
    """Throughput and cost of one replica on ``option`` for the spec's engine settings."""
    shape = spec.model.resolved_shape()
    assert shape is not None  # plan() refuses specs without a shape
    engine = spec.engine
    speed = estimate_throughput(
        shape,
        ACCELERATORS[option.accelerator],
        devices=option.devices,
        weight_format=engine.weight_format,
        batch=engine.max_num_seqs,
        context_tokens=workload.prompt_tokens + workload.output_tokens / 2,
        kv_dtype_bytes=engine.kv_dtype_bytes,
    )
    rate = workload.utilisation * speed.requests_per_s(
        workload.prompt_tokens, workload.output_tokens
    )
    tokens = rate * 3600 * (workload.prompt_tokens + workload.output_tokens)
    share = option.replicas_per_instance
    return PricedOption(
        option,
        speed,
        rate,
        tokens,
        option.instance.on_demand_usd_per_hour / share,
        table.spot_price(option.instance) / share,
    )


def plan(
    spec: DeploymentSpec, workload: Workload | None = None, table: PriceTable | None = None
) -> Plan:
    """Options that hold ``max_num_seqs`` full contexts, cheapest per 1M tokens first."""
    workload = workload or Workload()
    table = table or load_price_table()
    shape = spec.model.resolved_shape()
    if shape is None:
        raise ConfigError(
            f"model.shape: the planner does not know {spec.model.source}; give model.shape "
            "(params_b, layers, attention_heads, kv_heads, head_dim)"
        )
    engine = spec.engine
    devices = max(1, spec.accelerator.devices)
    need = memory_need(
        shape,
        weight_format=engine.weight_format,
        context_tokens=engine.max_model_len,
        sequences=engine.max_num_seqs,
        devices=devices,
        kv_dtype_bytes=engine.kv_dtype_bytes,
        tensor_parallel=spec.accelerator.tensor_parallel,
    )
    options = spec_options(spec, shape, sequences=engine.max_num_seqs, table=table)
    priced = [price_option(o, spec, workload, table) for o in options]
    priced.sort(key=lambda p: p.usd_per_million_on_demand)
    return Plan(need, priced, workload, table.as_of)

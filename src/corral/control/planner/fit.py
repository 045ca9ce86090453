"""Which accelerators a model fits on, and the refusal a spec gets when it does not fit."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from corral.control.accelerators import ACCELERATORS, Accelerator
from corral.control.planner.instances import InstanceType, PriceTable, load_price_table
from corral.control.planner.memory import (
    MemoryNeed,
    ModelShape,
    fits,
    memory_need,
    tensor_parallel_options,
)
from corral.errors import ConfigError

if TYPE_CHECKING:
    from corral.control.spec import DeploymentSpec


@dataclass(frozen=True, slots=True)
class FitOption:
    """One way to run a replica: the accelerator, how many, and the cheapest instance for it."""

    accelerator: str
    devices: int
    tensor_parallel: int
    instance: InstanceType
    replicas_per_instance: int
    need: MemoryNeed

    @property
    def usd_per_replica_hour(self) -> float:
        """On-demand cost of the share of the instance one replica occupies."""
        return self.instance.on_demand_usd_per_hour / self.replicas_per_instance


def fitting_options(
    shape: ModelShape,
    *,
    weight_format: str,
    context_tokens: int,
    sequences: int,
    utilisation: float,
    kv_dtype_bytes: float = 2.0,
    table: PriceTable | None = None,
    needs_bfloat16: bool = False,
) -> list[FitOption]:
    """For each accelerator, the fewest devices that hold the need; cheapest per replica first.

    ``needs_bfloat16`` leaves out accelerators vLLM refuses bf16 on (T4)."""
    table = table or load_price_table()
    options = []
    for device in ACCELERATORS.values():
        if device.vendor == "cpu" or (needs_bfloat16 and not device.supports_bfloat16):
            continue
        want = _Need(weight_format, context_tokens, sequences, utilisation, kv_dtype_bytes)
        option = _smallest_fit(device, shape, want, table)
        if option is not None:
            options.append(option)
    return sorted(options, key=lambda o: (o.usd_per_replica_hour, o.accelerator))


def spec_options(
    spec: DeploymentSpec, shape: ModelShape, *, sequences: int, table: PriceTable | None = None
) -> list[FitOption]:
    """``fitting_options`` for the spec's engine settings holding ``sequences`` full contexts
    (T4 left out when the spec asks for bfloat16 explicitly)."""
    engine = spec.engine
    return fitting_options(
        shape,
        weight_format=engine.weight_format,
        context_tokens=engine.max_model_len,
        sequences=sequences,
        utilisation=engine.gpu_memory_utilization,
        kv_dtype_bytes=engine.kv_dtype_bytes,
        table=table,
        needs_bfloat16=engine.dtype == "bfloat16",
    )


@dataclass(frozen=True, slots=True)
class _Need:
    weight_format: str
    context_tokens: int
    sequences: int
    utilisation: float
    kv_dtype_bytes: float


def _smallest_fit(
    device: Accelerator, shape: ModelShape, want: _Need, table: PriceTable
) -> FitOption | None:
    cores = device.cores_per_device
    for tp in tensor_parallel_options(shape, 64):
        if tp % cores and tp > 1:
            continue
        devices = max(1, tp // cores)
        need = memory_need(
            shape,
            weight_format=want.weight_format,
            context_tokens=want.context_tokens,
            sequences=want.sequences,
            devices=devices,
            kv_dtype_bytes=want.kv_dtype_bytes,
            tensor_parallel=tp,
        )
        instances = table.for_accelerator(device.name, devices)
        if not fits(need, device, want.utilisation) or not instances:
            continue
        best = min(instances, key=lambda i: i.on_demand_usd_per_hour / (i.count // devices))
        return FitOption(device.name, devices, tp, best, best.count // devices, need)
    return None


def check_fit(spec: DeploymentSpec) -> None:
    """Refuse a spec whose model cannot hold even one full-length sequence on its devices."""
    device = ACCELERATORS[spec.accelerator.type]
    shape = spec.model.resolved_shape()
    if shape is None or device.vendor == "cpu":
        return
    engine = spec.engine
    tp = spec.accelerator.tensor_parallel
    if shape.attention_heads % tp:
        raise ConfigError(
            f"accelerator.tensor_parallel: {tp} does not divide the model's "
            f"{shape.attention_heads} attention heads; use one of "
            f"{tensor_parallel_options(shape, 64)}"
        )
    need = memory_need(
        shape,
        weight_format=engine.weight_format,
        context_tokens=engine.max_model_len,
        sequences=1,
        devices=spec.accelerator.devices,
        kv_dtype_bytes=engine.kv_dtype_bytes,
        tensor_parallel=tp,
    )
    if fits(need, device, engine.gpu_memory_utilization) or _plan_sizes(spec, shape):
        return
    have = device.memory_gb * engine.gpu_memory_utilization
    weights = spec.dtype if engine.quantization == "none" else engine.quantization
    raise ConfigError(
        f"accelerator: {spec.model.source} ({weights}, max_model_len "
        f"{engine.max_model_len}) does not fit on {spec.accelerator.devices}× {device.name}: "
        f"needs ≥ {need.total_gb:.0f} GB ({need.per_device_gb:.1f} GB per device; weights "
        f"{need.weights_gb:.0f} GB), have {have:.1f} GB per device at gpu_memory_utilization "
        f"{engine.gpu_memory_utilization}; try {_suggest(shape, spec)}"
    )


def _plan_sizes(spec: DeploymentSpec, shape: ModelShape) -> bool:
    """True when the spec leaves parallelism to the planner and one node of its accelerator
    holds a full-length sequence (``planner.sizing`` then picks the devices)."""
    if spec.accelerator.model_fields_set & {"count", "tensor_parallel", "pipeline_parallel"}:
        return False
    options = spec_options(spec, shape, sequences=1)
    return any(o.accelerator == spec.accelerator.type for o in options)


def _suggest(shape: ModelShape, spec: DeploymentSpec) -> str:
    engine = spec.engine
    options = spec_options(spec, shape, sequences=engine.max_num_seqs)
    tips = [
        f"accelerator {o.accelerator} with count {o.devices} (tensor_parallel {o.tensor_parallel}, "
        f"{o.instance.name})"
        for o in options[:3]
    ]
    if engine.quantization == "none":
        tips.append("engine.quantization awq or fp8")
    tips.append("a smaller engine.max_model_len")
    return "; or ".join(tips)

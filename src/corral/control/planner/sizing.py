"""Deploy what the plan sized: the planner's devices and tensor parallelism for the spec's load."""

from __future__ import annotations

from dataclasses import dataclass

from corral.control.accelerators import ACCELERATORS
from corral.control.planner.fit import FitOption, spec_options
from corral.control.planner.instances import PriceTable
from corral.control.planner.memory import max_sequences
from corral.control.spec import AcceleratorSpec, DeploymentSpec

_PARALLELISM = frozenset({"count", "tensor_parallel", "pipeline_parallel"})


@dataclass(frozen=True, slots=True)
class Sizing:
    """The spec to render, and what the CLI should say about how it was sized."""

    spec: DeploymentSpec
    note: str | None = None
    """Set when the plan chose the devices, or when the spec overrides the plan."""


def planned_option(spec: DeploymentSpec, table: PriceTable) -> FitOption | None:
    """The plan's row for the spec's accelerator: fewest devices holding ``max_num_seqs`` full
    contexts (what ``corral plan`` prints for it), or None where nothing on one node holds it."""
    shape = spec.model.resolved_shape()
    if shape is None or ACCELERATORS[spec.accelerator.type].vendor == "cpu":
        return None
    options = spec_options(spec, shape, sequences=spec.engine.max_num_seqs, table=table)
    return next((o for o in options if o.accelerator == spec.accelerator.type), None)


def size_to_plan(spec: DeploymentSpec, table: PriceTable) -> Sizing:
    """Give a spec that leaves parallelism unset the plan's devices and tensor parallelism, so
    ``corral plan`` and ``corral deploy`` agree; say so when an explicit spec differs."""
    option = planned_option(spec, table)
    if option is None:
        return Sizing(spec)
    explicit = bool(spec.accelerator.model_fields_set & _PARALLELISM)
    acc = spec.accelerator
    if not explicit:
        sized = AcceleratorSpec(
            type=acc.type, count=option.devices, tensor_parallel=option.tensor_parallel
        )
        note = (
            f"sized to the plan: {option.devices}× {acc.type} with tensor_parallel "
            f"{option.tensor_parallel} on {option.instance.name} holds max_num_seqs "
            f"{spec.engine.max_num_seqs} × max_model_len {spec.engine.max_model_len}; set "
            "accelerator.count and tensor_parallel to choose otherwise"
        )
        return Sizing(spec.model_copy(update={"accelerator": sized}), note)
    if acc.devices >= option.devices:
        return Sizing(spec)
    return Sizing(spec, _override_note(spec, option))


def _override_note(spec: DeploymentSpec, option: FitOption) -> str:
    shape = spec.model.resolved_shape()
    assert shape is not None  # planned_option found an option
    engine, acc = spec.engine, spec.accelerator
    held = max_sequences(
        shape,
        weight_format=engine.weight_format,
        context_tokens=engine.max_model_len,
        device=ACCELERATORS[acc.type],
        devices=acc.devices,
        utilisation=engine.gpu_memory_utilization,
        kv_dtype_bytes=engine.kv_dtype_bytes,
        tensor_parallel=acc.tensor_parallel,
    )
    return (
        f"the spec overrides the plan: {acc.devices}× {acc.type} (tensor_parallel "
        f"{acc.tensor_parallel}) holds {held} of max_num_seqs {engine.max_num_seqs} sequences "
        f"of {engine.max_model_len} tokens, so vLLM batches fewer; the plan uses "
        f"{option.devices}× {acc.type} with tensor_parallel {option.tensor_parallel} "
        f"({option.instance.name}), or lower engine.max_num_seqs"
    )

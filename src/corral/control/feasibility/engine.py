"""vLLM's rules for the spec's engine arguments on its accelerator, and one node per replica."""

from __future__ import annotations

from corral.control.accelerators import ACCELERATORS, Accelerator
from corral.control.feasibility.report import Problem
from corral.control.planner.disk import allowed_instances
from corral.control.planner.fit import spec_options
from corral.control.planner.instances import PriceTable
from corral.control.planner.memory import ModelShape, max_sequences, tensor_parallel_options
from corral.control.spec import DeploymentSpec

QUANTIZATION_MIN_CAPABILITY = {"fp8": 8.0, "awq": 7.5, "gptq": 6.0}
"""vLLM's ``get_min_capability()`` per quantization method (vllm/model_executor/layers/
quantization/fp8.py: 80 (Marlin weight-only below 8.9), awq.py: 75, gptq.py: 60)."""


def engine_problems(spec: DeploymentSpec, table: PriceTable) -> tuple[list[Problem], list[str]]:
    """Refusals (dtype, quantization, TP vs heads, KV below one full context, multi-node) and
    notes (KV holds fewer than ``max_num_seqs`` full contexts)."""
    device = ACCELERATORS[spec.accelerator.type]
    if device.vendor == "cpu":
        return [], []
    problems = [*_dtype(spec, device), *_multi_node(spec, device, table)]
    shape = spec.model.resolved_shape()
    if shape is None:
        return problems, []
    heads = _heads(spec, shape)
    if heads:
        return [*problems, *heads], []
    kv_problems, notes = _kv_capacity(spec, shape, device)
    return [*problems, *kv_problems], notes


def _dtype(spec: DeploymentSpec, device: Accelerator) -> list[Problem]:
    out = []
    if spec.dtype == "bfloat16" and not device.supports_bfloat16:
        out.append(
            Problem(
                "engine",
                f"vLLM refuses bfloat16 on {device.name} (compute capability "
                f"{device.compute_capability}; bf16 needs 8.0: vllm/platforms/cuda.py "
                "check_if_supports_dtype)",
                "set engine.dtype to auto or float16, or choose a10g, l4, l40s, a100, h100 or h200",
            )
        )
    need = QUANTIZATION_MIN_CAPABILITY.get(spec.engine.quantization)
    cc = device.compute_capability
    if need is not None and cc is not None and cc < need:
        out.append(
            Problem(
                "engine",
                f"vLLM's {spec.engine.quantization} needs compute capability {need}; "
                f"{device.name} has {cc}",
                "choose another engine.quantization or a newer accelerator",
            )
        )
    return out


def _heads(spec: DeploymentSpec, shape: ModelShape) -> list[Problem]:
    tp = spec.accelerator.tensor_parallel
    if shape.attention_heads % tp == 0:
        return []
    return [
        Problem(
            "engine",
            f"tensor_parallel {tp} does not divide the model's {shape.attention_heads} attention "
            "heads (vLLM: ModelConfig.verify_with_parallel_config)",
            f"use tensor_parallel in {tensor_parallel_options(shape, 64)}",
        )
    ]


def _kv_capacity(
    spec: DeploymentSpec, shape: ModelShape, device: Accelerator
) -> tuple[list[Problem], list[str]]:
    engine, acc = spec.engine, spec.accelerator
    held = max_sequences(
        shape,
        weight_format=engine.weight_format,
        context_tokens=engine.max_model_len,
        device=device,
        devices=max(1, acc.devices),
        utilisation=engine.gpu_memory_utilization,
        kv_dtype_bytes=engine.kv_dtype_bytes,
        tensor_parallel=acc.tensor_parallel,
    )
    if held < 1:
        reason = (
            f"the KV cache left after weights on {acc.devices}× {device.name} holds less than one "
            f"max_model_len {engine.max_model_len} sequence; vLLM refuses to start "
            "(vllm/v1/core/kv_cache_utils.py check_enough_kv_cache_memory)"
        )
        fix = "lower engine.max_model_len, quantize, or add devices (see corral plan)"
        return [Problem("engine", reason, fix)], []
    if held >= engine.max_num_seqs:
        return [], []
    note = (
        f"KV cache holds {held} of max_num_seqs {engine.max_num_seqs} sequences of "
        f"{engine.max_model_len} tokens on {acc.devices}× {device.name}: vLLM batches fewer "
        "full-length sequences; corral plan shows the devices that hold them all"
    )
    return [], [note]


def _multi_node(spec: DeploymentSpec, device: Accelerator, table: PriceTable) -> list[Problem]:
    acc = spec.accelerator
    hosts = table.for_accelerator(device.name)
    if spec.capacity.instance_types:
        hosts = [i for i in hosts if i.name in spec.capacity.instance_types]
    if not hosts or allowed_instances(spec, table):
        return []
    biggest = max(hosts, key=lambda i: i.count)
    nodes = -(-acc.devices // biggest.count)
    unit = "chips" if device.vendor == "neuron" else "GPUs"
    if acc.nodes > 1:
        reason = (
            f"{acc.nodes} nodes × {acc.devices_per_node} {device.name} {unit} per replica need "
            "an EFA-capable instance type with that many devices; none is allowed"
        )
        return [Problem("engine", reason, "allow an EFA-capable instance type, or more nodes")]
    reason = (
        f"TP{acc.tensor_parallel}×PP{acc.pipeline_parallel} needs {acc.devices} {device.name} "
        f"{unit} on {nodes} nodes ({biggest.name} has {biggest.count})"
    )
    return [Problem("engine", reason, _single_node_fix(spec, table, nodes))]


def _single_node_fix(spec: DeploymentSpec, table: PriceTable, nodes: int) -> str:
    shape = spec.model.resolved_shape()
    tips = []
    if shape is not None:
        # The rows `corral plan` prints (max_num_seqs full contexts), else the fewest devices.
        options = spec_options(spec, shape, sequences=spec.engine.max_num_seqs, table=table)
        options = options or spec_options(spec, shape, sequences=1, table=table)
        tips = [
            f"accelerator {o.accelerator} with count {o.devices} and tensor_parallel "
            f"{o.tensor_parallel} ({o.instance.name})"
            for o in options[:3]
        ]
    if spec.engine.quantization == "none":
        tips.append("engine.quantization fp8 or awq to need fewer devices")
    acc = spec.accelerator
    if ACCELERATORS[acc.type].vendor == "nvidia" and acc.pipeline_parallel % nodes == 0:
        tips.insert(0, f"accelerator.nodes {nodes} (a multi-node replica over EFA)")
    return "choose " + "; or ".join(tips)

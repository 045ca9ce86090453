"""Accelerator memory math: weights + KV cache + overhead, per device, for a model shape."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from corral.control.accelerators import Accelerator

GB = 1e9

WEIGHT_BYTES = {
    "bfloat16": 2.0,
    "float16": 2.0,
    "float32": 4.0,
    "fp8": 1.0,
    "awq": 0.55,
    "gptq": 0.55,
}
"""Bytes per parameter; 4-bit formats include group scales and unquantised embeddings."""

OVERHEAD_GB_PER_DEVICE = 2.0
"""CUDA/Neuron runtime context, activations and graph buffers that vLLM keeps on each device."""


@dataclass(frozen=True, slots=True)
class ModelShape:
    """What the memory math needs to know about a transformer."""

    params_b: float
    """Parameters, in billions."""
    layers: int
    attention_heads: int
    kv_heads: int
    head_dim: int
    active_params_b: float | None = None
    """Parameters one token passes through, for mixture-of-experts models (None: all of them)."""

    @property
    def compute_params_b(self) -> float:
        """Parameters that cost FLOPs per token: the active ones of an MoE model."""
        return self.active_params_b or self.params_b

    def kv_bytes_per_token(self, kv_dtype_bytes: float = 2.0, tensor_parallel: int = 1) -> float:
        """Bytes of KV cache one token occupies over all shards: K and V, every layer, every
        KV head, counting the copies tensor parallelism makes when it has more shards than KV
        heads (vLLM gives each shard ``max(1, kv_heads // tp)`` heads: ``get_num_kv_heads`` in
        vllm/config/model.py; transformers-neuronx/NxD replicate KV heads the same way)."""
        heads = max(self.kv_heads, tensor_parallel)
        return 2 * self.layers * heads * self.head_dim * kv_dtype_bytes


KNOWN_SHAPES: dict[str, ModelShape] = {
    "llama-3.2-1b": ModelShape(1.24, 16, 32, 8, 64),
    "llama-3.2-3b": ModelShape(3.21, 28, 24, 8, 128),
    "llama-3.1-8b": ModelShape(8.03, 32, 32, 8, 128),
    "meta-llama-3-8b": ModelShape(8.03, 32, 32, 8, 128),
    "llama-3.1-70b": ModelShape(70.55, 80, 64, 8, 128),
    "llama-3.3-70b": ModelShape(70.55, 80, 64, 8, 128),
    "meta-llama-3-70b": ModelShape(70.55, 80, 64, 8, 128),
    "mistral-7b": ModelShape(7.25, 32, 32, 8, 128),
    "llama-3.1-405b": ModelShape(405.9, 126, 128, 8, 128),
    # Mixtral routes each token through 2 of 8 experts: ~12.9B of 46.7B parameters are active.
    "mixtral-8x7b": ModelShape(46.7, 32, 32, 8, 128, active_params_b=12.9),
    "qwen2.5-0.5b": ModelShape(0.49, 24, 14, 2, 64),
    "qwen2.5-3b": ModelShape(3.09, 36, 16, 2, 128),
    "qwen2.5-7b": ModelShape(7.62, 28, 28, 4, 128),
    "qwen2.5-14b": ModelShape(14.77, 48, 40, 8, 128),
    "qwen2.5-32b": ModelShape(32.76, 64, 40, 8, 128),
    "qwen2.5-72b": ModelShape(72.7, 80, 64, 8, 128),
}


def known_shape(source: str) -> ModelShape | None:
    """The shape of a well-known model from its id or path (``meta-llama/Llama-3.1-8B-...``)."""
    base = source.rstrip("/").rsplit("/", 1)[-1].lower()
    for prefix, shape in KNOWN_SHAPES.items():
        if re.match(re.escape(prefix) + r"(\b|-|$)", base):
            return shape
    return None


@dataclass(frozen=True, slots=True)
class MemoryNeed:
    """Memory one replica needs, in GB (10^9 bytes)."""

    weights_gb: float
    kv_cache_gb: float
    overhead_gb: float
    devices: int

    @property
    def total_gb(self) -> float:
        return self.weights_gb + self.kv_cache_gb + self.overhead_gb

    @property
    def per_device_gb(self) -> float:
        return self.total_gb / self.devices


def memory_need(
    shape: ModelShape,
    *,
    weight_format: str,
    context_tokens: int,
    sequences: int,
    devices: int,
    kv_dtype_bytes: float = 2.0,
    tensor_parallel: int = 1,
) -> MemoryNeed:
    """Weights + KV cache for ``sequences`` full contexts + overhead on each of ``devices``."""
    weights = shape.params_b * 1e9 * WEIGHT_BYTES[weight_format] / GB
    per_token = shape.kv_bytes_per_token(kv_dtype_bytes, tensor_parallel)
    kv = per_token * context_tokens * sequences / GB
    return MemoryNeed(weights, kv, OVERHEAD_GB_PER_DEVICE * devices, devices)


def usable_gb(device: Accelerator, devices: int, utilisation: float) -> float:
    """Memory vLLM may use on ``devices`` of ``device`` at ``gpu_memory_utilization``."""
    return device.memory_gb * devices * utilisation


def fits(need: MemoryNeed, device: Accelerator, utilisation: float) -> bool:
    """True when the need fits on its devices at the given memory utilisation."""
    return need.per_device_gb <= device.memory_gb * utilisation


def tensor_parallel_options(shape: ModelShape, up_to: int) -> list[int]:
    """Tensor-parallel sizes (powers of two) that divide the attention heads, up to ``up_to``."""
    sizes = [2**i for i in range(int(math.log2(max(1, up_to))) + 1)]
    return [s for s in sizes if shape.attention_heads % s == 0]


def max_sequences(
    shape: ModelShape,
    *,
    weight_format: str,
    context_tokens: int,
    device: Accelerator,
    devices: int,
    utilisation: float,
    kv_dtype_bytes: float = 2.0,
    tensor_parallel: int = 1,
) -> int:
    """How many full-context sequences fit in the KV cache left after weights and overhead."""
    base = memory_need(
        shape,
        weight_format=weight_format,
        context_tokens=context_tokens,
        sequences=0,
        devices=devices,
        kv_dtype_bytes=kv_dtype_bytes,
    )
    free = usable_gb(device, devices, utilisation) - base.total_gb
    per_sequence = shape.kv_bytes_per_token(kv_dtype_bytes, tensor_parallel) * context_tokens / GB
    return max(0, math.floor(free / per_sequence))

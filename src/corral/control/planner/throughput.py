"""Rough replica throughput: prefill bound by compute, decode bound by memory bandwidth."""

from __future__ import annotations

from dataclasses import dataclass

from corral.control.accelerators import Accelerator
from corral.control.planner.memory import GB, WEIGHT_BYTES, ModelShape

BANDWIDTH_EFFICIENCY = 0.6
"""Share of peak memory bandwidth a decode step achieves in practice."""

COMPUTE_EFFICIENCY = 0.4
"""Model FLOPs utilisation during prefill."""


@dataclass(frozen=True, slots=True)
class Throughput:
    """What one replica can do per second."""

    prefill_tokens_per_s: float
    decode_tokens_per_s: float
    """Output tokens per second summed over the whole batch."""

    def replica_seconds(self, prompt_tokens: float, output_tokens: float) -> float:
        """Replica time one request occupies (its share of a batched replica)."""
        return prompt_tokens / self.prefill_tokens_per_s + output_tokens / self.decode_tokens_per_s

    def requests_per_s(self, prompt_tokens: float, output_tokens: float) -> float:
        return 1.0 / self.replica_seconds(prompt_tokens, output_tokens)


def estimate_throughput(
    shape: ModelShape,
    device: Accelerator,
    *,
    devices: int,
    weight_format: str,
    batch: int,
    context_tokens: float,
    kv_dtype_bytes: float = 2.0,
) -> Throughput:
    """Each decode step reads all weights and the batch's KV cache once; prefill does 2 FLOPs
    per parameter per token. Efficiencies are typical vLLM figures, not measurements."""
    weights = shape.params_b * 1e9 * WEIGHT_BYTES[weight_format]
    kv = batch * context_tokens * shape.kv_bytes_per_token(kv_dtype_bytes)
    bandwidth = devices * device.bandwidth_gbs * GB * BANDWIDTH_EFFICIENCY
    step_s = (weights + kv) / bandwidth
    flops = devices * device.tflops_bf16 * 1e12 * COMPUTE_EFFICIENCY
    # Prefill costs 2 FLOPs per *active* parameter per token (an MoE token skips most experts);
    # decode still reads every expert's weights, as a batch routes tokens to all of them.
    return Throughput(flops / (2 * shape.compute_params_b * 1e9), batch / step_s)

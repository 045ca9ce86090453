"""One replica's speed and capacity, derived from the planner's throughput and memory models."""

from __future__ import annotations

import math
from dataclasses import dataclass

from corral.control.accelerators import ACCELERATORS
from corral.control.planner.memory import GB, memory_need, usable_gb
from corral.control.planner.throughput import Throughput, estimate_throughput
from corral.control.spec import DeploymentSpec
from corral.errors import ConfigError

LARGE_DEVICE_GB = 70.0
MAX_BATCHED_TOKENS = {True: 8192, False: 2048}
"""Tokens one engine step may carry: vLLM V1's default ``max_num_batched_tokens`` for the
OpenAI server, 8192 on devices with at least 70 GiB and 2048 on smaller ones (chunked
prefill splits a longer prompt over several steps)."""

_PROBE_CONTEXT = 1_000_000.0
"""A large context for reading the decode cost per KV token off the planner's linear model."""


@dataclass(frozen=True, slots=True)
class ReplicaModel:
    """What one engine replica can do: the planner's roofline numbers, step by step.

    A step decodes one token for every sequence past prefill and prefills up to the rest of the
    token budget. Its time is the planner's sum: reading the weights and the batch's KV cache
    once (when anything decodes) plus the prefill tokens at the compute-bound rate.
    """

    devices: int
    prefill_tokens_per_s: float
    step_base_s: float
    """A decode step with no KV cache to read: the weights, once."""
    step_s_per_kv_token: float
    """Extra decode-step time per token of KV cache the batch holds."""
    max_num_seqs: int
    kv_capacity_tokens: int
    """Tokens of KV cache left after weights and runtime overhead."""
    max_batched_tokens: int = 2048

    def step_s(self, decode_context_tokens: float, prefill_tokens: int, decoding: bool) -> float:
        """Seconds one engine step takes."""
        decode = self.step_base_s + self.step_s_per_kv_token * decode_context_tokens
        return (decode if decoding else 0.0) + prefill_tokens / self.prefill_tokens_per_s


def replica_model(spec: DeploymentSpec) -> ReplicaModel:
    """The replica the spec asks for, on its own accelerator and device count."""
    shape = spec.model.resolved_shape()
    device = ACCELERATORS[spec.accelerator.type]
    if shape is None or device.vendor == "cpu":
        raise ConfigError(
            "the simulator needs a GPU or Neuron accelerator and a model shape: set "
            "accelerator.type and, for a model the planner does not know, model.shape"
        )
    engine = spec.engine
    devices = max(1, spec.accelerator.devices)
    empty = _throughput(spec, context_tokens=0.0)
    probe = _throughput(spec, context_tokens=_PROBE_CONTEXT)
    base = 1.0 / empty.decode_tokens_per_s
    per_token = (1.0 / probe.decode_tokens_per_s - base) / _PROBE_CONTEXT
    fixed = memory_need(
        shape,
        weight_format=engine.weight_format,
        context_tokens=engine.max_model_len,
        sequences=0,
        devices=devices,
        kv_dtype_bytes=engine.kv_dtype_bytes,
    )
    free_gb = usable_gb(device, devices, engine.gpu_memory_utilization) - fixed.total_gb
    kv_tokens = math.floor(free_gb * GB / shape.kv_bytes_per_token(engine.kv_dtype_bytes))
    return ReplicaModel(
        devices=devices,
        prefill_tokens_per_s=empty.prefill_tokens_per_s,
        step_base_s=base,
        step_s_per_kv_token=per_token,
        max_num_seqs=engine.max_num_seqs,
        kv_capacity_tokens=max(0, kv_tokens),
        max_batched_tokens=MAX_BATCHED_TOKENS[device.memory_gb >= LARGE_DEVICE_GB],
    )


def planner_throughput(spec: DeploymentSpec, *, batch: int, context_tokens: float) -> Throughput:
    """The planner's throughput estimate for the spec's own replica (what ``corral plan`` uses)."""
    return _throughput(spec, context_tokens=context_tokens, batch=batch)


def _throughput(spec: DeploymentSpec, *, context_tokens: float, batch: int = 1) -> Throughput:
    shape = spec.model.resolved_shape()
    assert shape is not None  # replica_model refuses specs without a shape
    return estimate_throughput(
        shape,
        ACCELERATORS[spec.accelerator.type],
        devices=max(1, spec.accelerator.devices),
        weight_format=spec.engine.weight_format,
        batch=batch,
        context_tokens=context_tokens,
        kv_dtype_bytes=spec.engine.kv_dtype_bytes,
    )

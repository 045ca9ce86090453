"""The accelerators Corral can place models on, and the numbers the planner and renderers need."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

AcceleratorName = Literal["cpu", "t4", "a10g", "l4", "l40s", "a100", "h100", "h200", "inf2", "trn1"]
Vendor = Literal["cpu", "nvidia", "neuron"]

NVIDIA_RESOURCE = "nvidia.com/gpu"
BF16_MIN_CAPABILITY = 8.0
"""vLLM refuses bf16 below this CUDA compute capability (T4 is 7.5)."""
NEURON_RESOURCE = "aws.amazon.com/neuron"


@dataclass(frozen=True, slots=True)
class Accelerator:
    """One accelerator device (a GPU, or a Neuron chip) as the planner and renderers see it."""

    name: AcceleratorName
    vendor: Vendor
    memory_gb: float
    """Device memory in GB (10^9 bytes)."""
    bandwidth_gbs: float
    """Peak memory bandwidth in GB/s: decode speed is bound by it."""
    tflops_bf16: float
    """Dense bf16/fp16 tensor throughput in TFLOP/s: prefill speed is bound by it."""
    ray_accelerator_type: str | None
    """Ray's accelerator_type label (``ray.util.accelerators``), None where Ray has none."""
    cores_per_device: int = 1
    """NeuronCores per Neuron device (Ray's ``neuron_cores`` resource counts cores)."""
    compute_capability: float | None = None
    """CUDA compute capability (NVIDIA only): vLLM's dtype and fp8 rules depend on it."""

    @property
    def supports_bfloat16(self) -> bool:
        """Whether vLLM runs bf16 here: NVIDIA needs compute capability 8.0 (Ampere) or newer.

        vLLM: ``vllm/platforms/cuda.py`` / ``interface.py`` ``check_if_supports_dtype`` raises
        "Bfloat16 is only supported on GPUs with compute capability of at least 8.0".
        Neuron and CPU run bf16.
        """
        return self.compute_capability is None or self.compute_capability >= BF16_MIN_CAPABILITY

    @property
    def default_dtype(self) -> str:
        """What ``dtype: auto`` renders to: bf16 where supported, else fp16."""
        return "bfloat16" if self.supports_bfloat16 else "float16"

    @property
    def resource(self) -> str | None:
        """The extended resource a pod requests for this device, None for CPU."""
        return {"nvidia": NVIDIA_RESOURCE, "neuron": NEURON_RESOURCE}.get(self.vendor)

    @property
    def karpenter_gpu_name(self) -> str | None:
        """The value of the well-known ``instance-gpu-name`` label (NVIDIA only)."""
        return self.name if self.vendor == "nvidia" else None


ACCELERATORS: dict[str, Accelerator] = {
    a.name: a
    for a in (
        Accelerator("cpu", "cpu", 0.0, 0.0, 0.0, None),
        Accelerator("t4", "nvidia", 16.0, 320.0, 65.0, "T4", compute_capability=7.5),
        Accelerator("a10g", "nvidia", 24.0, 600.0, 70.0, "A10G", compute_capability=8.6),
        Accelerator("l4", "nvidia", 24.0, 300.0, 121.0, "L4", compute_capability=8.9),
        Accelerator("l40s", "nvidia", 48.0, 864.0, 362.0, "L40S", compute_capability=8.9),
        Accelerator("a100", "nvidia", 40.0, 1555.0, 312.0, "A100", compute_capability=8.0),
        Accelerator("h100", "nvidia", 80.0, 3350.0, 989.0, "H100", compute_capability=9.0),
        Accelerator("h200", "nvidia", 141.0, 4800.0, 989.0, "H200", compute_capability=9.0),
        Accelerator("inf2", "neuron", 32.0, 820.0, 190.0, None, cores_per_device=2),
        Accelerator("trn1", "neuron", 32.0, 820.0, 190.0, None, cores_per_device=2),
    )
}


def accelerator(name: str) -> Accelerator:
    """The accelerator called ``name``; KeyError names the allowed values."""
    try:
        return ACCELERATORS[name]
    except KeyError:
        allowed = ", ".join(ACCELERATORS)
        raise KeyError(f"unknown accelerator {name!r}; allowed: {allowed}") from None

"""Metric names Corral does not export but its dashboards may use: an explicit allowlist."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ExternalSource:
    """An exporter outside Corral: the series names dashboards may use from it, and its labels."""

    name: str
    description: str
    series: frozenset[str]
    labels: frozenset[str]


def _histogram(name: str) -> set[str]:
    return {f"{name}_bucket", f"{name}_sum", f"{name}_count"}


# Labels Prometheus and the Prometheus operator's monitors attach to scraped series (`node`:
# relabelled from the pod's node by deploy/kustomize's monitors).
TARGET_LABELS = frozenset(
    {"job", "instance", "namespace", "pod", "container", "service", "endpoint", "node"}
)

PROMETHEUS = ExternalSource(
    name="prometheus",
    description="series Prometheus itself writes for every scrape target",
    series=frozenset({"up", "scrape_duration_seconds", "scrape_samples_scraped"}),
    labels=frozenset(),
)

DCGM = ExternalSource(
    name="dcgm-exporter",
    description="NVIDIA's DCGM exporter (GPU operator or its own chart): default counters",
    series=frozenset(
        {
            "DCGM_FI_DEV_GPU_UTIL",
            "DCGM_FI_DEV_MEM_COPY_UTIL",
            "DCGM_FI_DEV_FB_USED",
            "DCGM_FI_DEV_FB_FREE",
            "DCGM_FI_DEV_GPU_TEMP",
            "DCGM_FI_DEV_MEMORY_TEMP",
            "DCGM_FI_DEV_POWER_USAGE",
            "DCGM_FI_DEV_SM_CLOCK",
            "DCGM_FI_DEV_MEM_CLOCK",
            "DCGM_FI_DEV_XID_ERRORS",
            "DCGM_FI_DEV_PCIE_REPLAY_COUNTER",
            "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL",
            "DCGM_FI_DEV_ROW_REMAP_FAILURE",
            "DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS",
            "DCGM_FI_PROF_GR_ENGINE_ACTIVE",
            "DCGM_FI_PROF_PIPE_TENSOR_ACTIVE",
            "DCGM_FI_PROF_DRAM_ACTIVE",
        }
    ),
    labels=frozenset(
        {"gpu", "UUID", "device", "modelName", "Hostname", "DCGM_FI_DRIVER_VERSION", "pci_bus_id"}
    ),
)

VLLM = ExternalSource(
    name="vllm",
    description="vLLM's OpenAI server (V1 engine metric names), scraped as it exports them",
    series=frozenset(
        {
            "vllm:num_requests_running",
            "vllm:num_requests_waiting",
            "vllm:kv_cache_usage_perc",
            "vllm:prompt_tokens_total",
            "vllm:generation_tokens_total",
            "vllm:num_preemptions_total",
            *_histogram("vllm:time_to_first_token_seconds"),
            *_histogram("vllm:inter_token_latency_seconds"),
            *_histogram("vllm:e2e_request_latency_seconds"),
            *_histogram("vllm:request_queue_time_seconds"),
        }
    ),
    labels=frozenset({"model_name", "engine"}),
)

NEURON_MONITOR = ExternalSource(
    name="neuron-monitor",
    description="AWS neuron-monitor through its neuron-monitor-prometheus.py exporter "
    "(deploy/kustomize/components/accelerators/neuron-monitor.yaml); names and labels as a "
    "recorded scrape shows them (tests/fixtures/observability/neuron-monitor.prom)",
    series=frozenset(
        {
            "neuroncore_utilization_ratio",
            "neuroncore_memory_usage_constants",
            "neuroncore_memory_usage_model_code",
            "neuroncore_memory_usage_model_shared_scratchpad",
            "neuroncore_memory_usage_runtime_memory",
            "neuroncore_memory_usage_tensors",
            "neuron_runtime_memory_used_bytes",
            "execution_errors_total",
            "execution_status_total",
            "system_memory_total_bytes",
            "system_memory_used_bytes",
            "system_vcpu_count",
            "system_vcpu_usage_ratio",
            "instance_info",
        }
    ),
    labels=frozenset(
        {
            "neuroncore",
            "memory_location",
            "error_type",
            "status_type",
            "usage_type",
            "runtime_tag",
            "instance_type",
            "instance_id",
            "instance_name",
            "availability_zone",
            "region",
            "subnet_id",
        }
    ),
)

EXTERNAL_SOURCES: tuple[ExternalSource, ...] = (PROMETHEUS, DCGM, VLLM, NEURON_MONITOR)


def external_source(series_name: str) -> ExternalSource | None:
    """The allowlisted exporter a series comes from, or None when none does."""
    for source in EXTERNAL_SOURCES:
        if series_name in source.series:
            return source
    return None

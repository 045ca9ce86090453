"""Planner numbers, checked by hand."""

from __future__ import annotations

from pathlib import Path

import pytest

from corral.control.accelerators import ACCELERATORS
from corral.control.planner.fit import fitting_options
from corral.control.planner.instances import load_price_table
from corral.control.planner.memory import KNOWN_SHAPES, known_shape, max_sequences, memory_need
from corral.control.planner.plan import Workload, plan
from corral.control.planner.throughput import Throughput, estimate_throughput
from corral.control.planner.trace import TraceRequest, read_azure_trace, replay
from corral.control.spec import parse_spec
from corral.errors import ConfigError

FIXTURES = Path(__file__).parents[2] / "fixtures" / "control"
LLAMA_8B = KNOWN_SHAPES["llama-3.1-8b"]
LLAMA_70B = KNOWN_SHAPES["llama-3.1-70b"]


def test_8b_bf16_8k_context_16_sequences() -> None:
    # weights 8.03e9 × 2 B = 16.06 GB; KV per token 2 × 32 layers × 8 heads × 128 × 2 B = 128 KiB;
    # 8192 tokens × 16 sequences × 128 KiB = 16 GiB = 17.18 GB; overhead 2 GB on one GPU.
    need = memory_need(
        LLAMA_8B, weight_format="bfloat16", context_tokens=8192, sequences=16, devices=1
    )
    assert LLAMA_8B.kv_bytes_per_token() == 131072
    assert need.weights_gb == pytest.approx(16.06)
    assert need.kv_cache_gb == pytest.approx(17.18, abs=0.01)
    assert need.total_gb == pytest.approx(35.24, abs=0.01)


def test_8b_fits_one_l40s_or_two_a10g_but_not_one_a10g() -> None:
    options = {
        o.accelerator: o
        for o in fitting_options(
            LLAMA_8B, weight_format="bfloat16", context_tokens=8192, sequences=16, utilisation=0.9
        )
    }
    assert options["l40s"].devices == 1
    assert options["l40s"].instance.name == "g6e.xlarge"
    assert options["a10g"].devices == 2  # 35.24 GB > 21.6 usable on one A10G
    assert options["a10g"].instance.name == "g5.12xlarge"
    assert options["a10g"].replicas_per_instance == 2


def test_70b_bf16_needs_four_h100() -> None:
    # weights 70.55e9 × 2 = 141.1 GB; KV 2 × 80 × 8 × 128 × 2 B = 320 KiB/token → 42.95 GB.
    need = memory_need(
        LLAMA_70B, weight_format="bfloat16", context_tokens=8192, sequences=16, devices=4
    )
    assert need.weights_gb == pytest.approx(141.1)
    assert need.kv_cache_gb == pytest.approx(42.95, abs=0.01)
    assert need.per_device_gb == pytest.approx(48.0, abs=0.02)
    options = {
        o.accelerator: o
        for o in fitting_options(
            LLAMA_70B, weight_format="bfloat16", context_tokens=8192, sequences=16, utilisation=0.9
        )
    }
    assert (options["h100"].devices, options["h100"].tensor_parallel) == (4, 4)
    assert options["h100"].instance.name == "p5.48xlarge"
    assert options["h200"].devices == 2
    assert "l4" not in options  # 8 × 24 GB cannot hold 192 GB


def test_awq_quarters_the_weights() -> None:
    need = memory_need(LLAMA_70B, weight_format="awq", context_tokens=0, sequences=0, devices=1)
    assert need.weights_gb == pytest.approx(38.8, abs=0.1)


def test_max_sequences_fill_the_memory_left() -> None:
    # l40s: 48 × 0.9 = 43.2 GB − 16.06 − 2 = 25.14 GB free; one 8k sequence is 1.07 GB → 23.
    seqs = max_sequences(
        LLAMA_8B,
        weight_format="bfloat16",
        context_tokens=8192,
        device=ACCELERATORS["l40s"],
        devices=1,
        utilisation=0.9,
    )
    assert seqs == 23


def test_known_shapes_match_ids_and_paths() -> None:
    assert known_shape("meta-llama/Llama-3.1-8B-Instruct") is LLAMA_8B
    assert known_shape("s3://bucket/models/Llama-3.1-70B-Instruct/") is LLAMA_70B
    assert known_shape("someone/unknown-model") is None


def test_throughput_is_bandwidth_bound_decode() -> None:
    # l40s: 864 GB/s × 0.6 = 518.4 GB/s; step reads 16.06 GB + 16 × 4096 × 131072 B = 24.65 GB
    # → 47.5 ms per step → 16 / 0.0475 = 336 tokens/s; prefill 362e12 × 0.4 / (2 × 8.03e9).
    speed = estimate_throughput(
        LLAMA_8B,
        ACCELERATORS["l40s"],
        devices=1,
        weight_format="bfloat16",
        batch=16,
        context_tokens=4096,
    )
    assert speed.decode_tokens_per_s == pytest.approx(336.5, abs=0.5)
    assert speed.prefill_tokens_per_s == pytest.approx(9016, abs=1)


def test_plan_prices_options_and_compares_with_a_managed_api() -> None:
    spec = parse_spec({"name": "m", "model": {"source": "meta-llama/Llama-3.1-8B-Instruct"}})
    workload = Workload(
        1000, 250, 0.5, managed_usd_per_million_in=0.2, managed_usd_per_million_out=0.6
    )
    result = plan(spec, workload)
    assert workload.managed_usd_per_million == pytest.approx(0.28)
    costs = [o.usd_per_million_on_demand for o in result.options]
    assert costs == sorted(costs)
    l40s = next(o for o in result.options if o.option.accelerator == "l40s")
    assert l40s.usd_per_hour_on_demand == pytest.approx(1.861)
    assert l40s.usd_per_hour_spot == pytest.approx(1.861 * 0.4)
    assert l40s.usd_per_million_on_demand == pytest.approx(1.861 / l40s.tokens_per_hour * 1e6)
    assert result.prices_as_of == load_price_table().as_of


def test_plan_needs_a_shape_for_unknown_models() -> None:
    spec = parse_spec({"name": "m", "model": {"source": "someone/unknown-model"}})
    with pytest.raises(ConfigError, match=r"model\.shape"):
        plan(spec)


def test_price_table_errors_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "prices.yaml"
    bad.write_text("as_of: x\nregion: r\ndefault_spot_discount: 0.5\ninstances: [{name: a}]\n")
    with pytest.raises(ConfigError, match=r"prices\.yaml is not a valid instance table"):
        load_price_table(bad)


def test_replay_holds_replicas_for_the_downscale_delay() -> None:
    speed = Throughput(prefill_tokens_per_s=1000, decode_tokens_per_s=100)
    # each request: 1000/1000 + 100/100 = 2 replica-seconds; 60 s window at 50 % holds 15.
    burst = [TraceRequest(0.5, 1000, 100)] * 45 + [TraceRequest(200.0, 1000, 100)]
    result = replay(burst, speed, devices_per_replica=2, utilisation=0.5, downscale_delay_s=120)
    assert result.replicas == [3, 3, 1, 1]
    assert result.peak_replicas == 3
    assert result.autoscaled_device_hours == pytest.approx(8 * 60 * 2 / 3600)
    assert result.static_device_hours == pytest.approx(3 * 4 * 60 * 2 / 3600)


def test_replay_of_real_trace_slice_autoscales_below_static() -> None:
    requests = read_azure_trace(
        Path(__file__).parents[3] / "examples" / "traces" / "azure-code-slice.csv"
    )
    assert len(requests) == 600
    assert requests[0].at_s == 0.0
    assert requests[0].prompt_tokens == 4808
    speed = Throughput(prefill_tokens_per_s=9016, decode_tokens_per_s=336)
    result = replay(requests, speed, devices_per_replica=1, downscale_delay_s=60)
    assert result.peak_replicas >= 2
    assert result.autoscaled_device_hours < result.static_device_hours


def test_trace_errors_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "t.csv"
    bad.write_text("when,prompt\n1,2\n")
    with pytest.raises(ConfigError, match="is not an Azure LLM trace"):
        read_azure_trace(bad)


# Issue 17, defect 11: vLLM (and Neuron) replicate KV heads when tensor parallelism exceeds
# them: each shard keeps max(1, kv_heads // tp) heads (vllm/config/model.py get_num_kv_heads).
def test_neuron_tp16_70b_counts_replicated_kv_heads_and_does_not_fit() -> None:
    need = memory_need(
        LLAMA_70B,
        weight_format="bfloat16",
        context_tokens=8192,
        sequences=16,
        devices=8,
        tensor_parallel=16,
    )
    assert need.per_device_gb == pytest.approx(30.4, abs=0.05)  # 8 KV heads over 16 cores
    assert need.per_device_gb > ACCELERATORS["inf2"].memory_gb * 0.9  # 28.8 GB usable
    options = fitting_options(
        LLAMA_70B, weight_format="bfloat16", context_tokens=8192, sequences=16, utilisation=0.9
    )
    assert all(not (o.accelerator == "inf2" and o.tensor_parallel == 16) for o in options)


def test_mixtral_prefill_uses_active_parameters() -> None:
    mixtral = KNOWN_SHAPES["mixtral-8x7b"]
    dense = type(mixtral)(46.7, 32, 32, 8, 128)
    args = {"devices": 4, "weight_format": "bfloat16", "batch": 16, "context_tokens": 2048}
    moe_speed = estimate_throughput(mixtral, ACCELERATORS["l40s"], **args)  # type: ignore[arg-type]
    dense_speed = estimate_throughput(dense, ACCELERATORS["l40s"], **args)  # type: ignore[arg-type]
    ratio = moe_speed.prefill_tokens_per_s / dense_speed.prefill_tokens_per_s
    assert ratio == pytest.approx(46.7 / 12.9)
    assert moe_speed.decode_tokens_per_s == dense_speed.decode_tokens_per_s


def test_bfloat16_specs_are_not_planned_onto_t4() -> None:
    shape = KNOWN_SHAPES["qwen2.5-7b"]
    kwargs = {"weight_format": "bfloat16", "context_tokens": 4096, "sequences": 4}
    with_t4 = fitting_options(shape, utilisation=0.9, **kwargs)  # type: ignore[arg-type]
    without = fitting_options(shape, utilisation=0.9, needs_bfloat16=True, **kwargs)  # type: ignore[arg-type]
    assert "t4" in {o.accelerator for o in with_t4}
    assert "t4" not in {o.accelerator for o in without}

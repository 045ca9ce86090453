"""Deployment specs: defaults, the JSON Schema, and refusals that name the field and the fix."""

from __future__ import annotations

from typing import Any

import pytest

from corral.control.spec import deployment_schema, parse_spec
from corral.errors import ConfigError


def spec(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"name": "m", "model": {"source": "meta-llama/Llama-3.1-8B-Instruct"}}
    base.update(overrides)
    return base


def refusal(data: object) -> str:
    with pytest.raises(ConfigError) as info:
        parse_spec(data)
    return info.value.message


def test_defaults_describe_one_l4_replica_without_provisioner() -> None:
    parsed = parse_spec(spec())
    assert parsed.accelerator.type == "l4"
    assert parsed.accelerator.devices == 1
    assert parsed.capacity.provisioner == "none"
    assert parsed.served_name == "Llama-3.1-8B-Instruct"
    assert parsed.model.kind == "huggingface"


def test_schema_is_published_with_every_top_level_field() -> None:
    schema = deployment_schema()
    assert schema["$id"].endswith("deployment.json")
    assert set(schema["properties"]) >= {"name", "model", "engine", "accelerator", "capacity"}
    assert schema["required"] == ["name", "model"]


def test_typo_names_the_field_and_suggests_the_right_one() -> None:
    message = refusal(spec(replcas={"min": 1}))
    assert "replcas: unknown field; did you mean 'replicas'?" in message


def test_nested_typo_lists_allowed_fields_of_that_section() -> None:
    message = refusal(spec(engine={"max_model_length": 4096}))
    assert "engine.max_model_length" in message
    assert "did you mean 'max_model_len'?" in message


def test_unknown_accelerator_lists_allowed_values() -> None:
    message = refusal(spec(accelerator={"type": "a10"}))
    assert "accelerator.type" in message
    assert "'a10g'" in message
    assert "'inf2'" in message


def test_wrong_type_is_reported() -> None:
    assert "replicas.max" in refusal(spec(replicas={"max": "many"}))


def test_seventy_b_on_one_24gb_gpu_does_not_fit_and_suggests_alternatives() -> None:
    message = refusal(
        spec(
            model={"source": "meta-llama/Llama-3.1-70B-Instruct"},
            accelerator={"type": "a10g", "count": 1},
        )
    )
    assert "does not fit on 1× a10g" in message
    assert "needs ≥ 146 GB" in message
    assert "try accelerator" in message
    assert "engine.quantization awq or fp8" in message


def test_seventy_b_with_parallelism_left_to_the_planner_is_not_refused_at_parse() -> None:
    # planner.sizing gives it the devices (8× a10g on g5.48xlarge) before rendering.
    parsed = parse_spec(
        {
            "name": "m",
            "model": {"source": "meta-llama/Llama-3.1-70B-Instruct"},
            "accelerator": {"type": "a10g"},
        }
    )
    assert parsed.accelerator.devices == 1


def test_parallelism_must_match_device_count() -> None:
    message = refusal(spec(accelerator={"type": "h100", "count": 2, "tensor_parallel": 4}))
    assert "must equal the GPUs per replica (2)" in message


def test_tensor_parallel_must_divide_attention_heads() -> None:
    message = refusal(spec(accelerator={"type": "l4", "tensor_parallel": 3}))
    assert "does not divide the model's 32 attention heads" in message


def test_karpenter_needs_a_node_class() -> None:
    assert "needs node_class" in refusal(spec(capacity={"provisioner": "karpenter"}))


def test_bad_sources_and_labels_are_refused() -> None:
    assert "s3://bucket-name/prefix" in refusal(spec(model={"source": "s3://Bad_Bucket"}))
    assert "Hugging Face id" in refusal(spec(model={"source": "just-a-name"}))
    assert "not a valid Kubernetes label" in refusal(spec(labels={"team": "has space"}))


def test_neuron_parallelism_counts_neuron_cores() -> None:
    parsed = parse_spec(spec(accelerator={"type": "inf2", "tensor_parallel": 4}))
    assert parsed.accelerator.devices == 2


def test_replica_bounds_are_ordered() -> None:
    assert "min (3) must not exceed max (2)" in refusal(spec(replicas={"min": 3, "max": 2}))


def test_a_spec_must_be_a_mapping() -> None:
    assert "YAML mapping" in refusal(["not", "a", "mapping"])

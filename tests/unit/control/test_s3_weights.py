"""S3 weights (issue 18): streamed by vLLM's Run:ai model streamer with the pod's IAM role,
beside Mountpoint and the copy, and the cold-start estimate that ranks the three."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest
import yaml

from corral.control.planner.cold_start import (
    NETWORK_GBPS,
    cold_start_note,
    s3_load_estimates,
)
from corral.control.planner.instances import load_price_table
from corral.control.render.deployment import vllm_args
from corral.control.render.rayservice import STREAM_LOAD_FORMAT
from corral.control.spec import load_spec, parse_spec
from corral.errors import ConfigError
from support.goldens import FIXTURES, golden, of_kind, spec_data

TABLE = load_price_table()
STREAM = "qwen-72b-s3-stream.yaml"


def stream_spec() -> dict[str, Any]:
    return spec_data(STREAM)


def test_streaming_passes_the_s3_uri_to_ray_serve_llm_with_the_streamer_load_format() -> None:
    objs = golden(STREAM)
    service = of_kind(objs, "RayService")
    llm = yaml.safe_load(service["spec"]["serveConfigV2"])["applications"][0]["args"]
    config = llm["llm_configs"][0]
    assert config["model_loading_config"]["model_source"].startswith("s3://corral-models-prod/")
    assert config["engine_kwargs"]["load_format"] == "runai_streamer"
    worker = service["spec"]["rayClusterConfig"]["workerGroupSpecs"][0]["template"]["spec"]
    assert "initContainers" not in worker
    assert [v["name"] for v in worker["volumes"]] == ["dshm"]  # no local copy of the weights
    assert not any(o["kind"] in ("PersistentVolume", "PersistentVolumeClaim") for o in objs)
    env = {e["name"]: e.get("value") for e in worker["containers"][0]["env"]}
    assert env["AWS_REGION"] == "us-east-1"


def test_ray_serve_llm_treats_the_load_format_as_streaming() -> None:
    """Ray Serve LLM skips its own download and hands vLLM the S3 URI only for the load formats
    in STREAMING_LOAD_FORMATS (ray/llm/_internal/common/utils/download_utils.py; read from the
    installed source, whose package imports pyarrow, which ray[serve] does not install)."""
    utils = pytest.importorskip("ray.llm._internal.common.utils")
    source = (Path(utils.__path__[0]) / "download_utils.py").read_text()
    found = next(
        node.value
        for node in ast.parse(source).body
        if isinstance(node, ast.Assign)
        and any(getattr(t, "id", None) == "STREAMING_LOAD_FORMATS" for t in node.targets)
    )
    assert STREAM_LOAD_FORMAT in ast.literal_eval(found)


def test_the_service_account_carries_the_irsa_role() -> None:
    account = of_kind(golden(STREAM), "ServiceAccount")
    assert account["metadata"]["annotations"] == {
        "eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/corral-model-reader"
    }
    pods = [
        g["template"]["spec"]
        for g in of_kind(golden(STREAM), "RayService")["spec"]["rayClusterConfig"][
            "workerGroupSpecs"
        ]
    ]
    assert {p["serviceAccountName"] for p in pods} == {account["metadata"]["name"]}


def test_the_plain_vllm_runtime_streams_with_the_same_flags() -> None:
    data = stream_spec()
    data["engine"]["runtime"] = "deployment"
    data["replicas"] = {"min": 1, "max": 1}
    args = vllm_args(parse_spec(data))
    assert args[args.index("--model") + 1] == data["model"]["source"]
    assert args[args.index("--load-format") + 1] == "runai_streamer"


def test_neuron_cannot_stream_and_a_bad_role_arn_is_refused() -> None:
    data = stream_spec()
    data["accelerator"] = {"type": "inf2", "count": 1, "tensor_parallel": 2}
    with pytest.raises(ConfigError, match="use s3_mode mountpoint or init-container"):
        parse_spec(data)
    data = stream_spec()
    data["model"]["iam_role_arn"] = "corral-model-reader"
    with pytest.raises(ConfigError, match=r"model\.iam_role_arn"):
        parse_spec(data)


def test_streaming_is_fastest_and_a_copy_to_ebs_is_slowest() -> None:
    p5 = next(i for i in TABLE.instances if i.name == "p5.48xlarge")
    ranked = s3_load_estimates(150, p5, nvme=True)
    assert [e.mode for e in ranked] == ["stream", "mountpoint", "init-container"]
    on_ebs = {e.mode: e for e in s3_load_estimates(150, p5, nvme=False)}
    assert on_ebs["init-container"].seconds > 2 * 150 / 0.131 * 0.99  # written, then read back
    assert "gp3 EBS" in on_ebs["init-container"].bottleneck


def test_a_small_instance_is_limited_by_its_network() -> None:
    g5 = next(i for i in TABLE.instances if i.name == "g5.xlarge")
    (stream, *_) = s3_load_estimates(15, g5, nvme=True)
    assert stream.bottleneck == f"g5.xlarge network {NETWORK_GBPS['g5.xlarge']} Gbit/s"
    assert stream.seconds == pytest.approx(15 / (10 / 8))


def test_every_accelerator_instance_has_a_network_bandwidth() -> None:
    assert {i.name for i in TABLE.instances if i.accelerator != "cpu"} <= set(NETWORK_GBPS)


def test_plan_and_deploy_say_which_mode_loads_faster() -> None:
    copy = load_spec(FIXTURES / "specs" / "qwen-32b-s3.yaml")
    note = cold_start_note(copy, TABLE)
    assert note is not None
    assert "s3_mode stream would load faster than init-container" in note
    stream = cold_start_note(load_spec(FIXTURES / "specs" / STREAM), TABLE)
    assert stream is not None
    assert stream.endswith("s3_mode stream is the fastest")
    assert cold_start_note(load_spec(FIXTURES / "specs" / "small-gpu.yaml"), TABLE) is None

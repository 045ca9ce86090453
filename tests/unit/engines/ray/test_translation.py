"""DeploymentSpec → Ray Serve application: the CPU (Corral replicas) and GPU (vLLM) variants."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from corral.control.ray_target import ray_application
from corral.control.spec import parse_spec
from corral.engines.ray.application import CORRAL_APP_PATH, LLM_APP_PATH
from corral.engines.ray.autoscaling import POLICY_PATH

REPLICAS = {
    "min": 0,
    "max": 3,
    "target_ongoing_requests": 4,
    "max_ongoing_requests": 8,
    "upscale_delay_s": 5,
    "downscale_delay_s": 60,
}


def _spec(**extra: Any) -> Any:
    return parse_spec(
        {"name": "smol", "model": {"source": "HuggingFaceTB/SmolLM2-135M-Instruct"}, **extra}
    )


def test_cpu_spec_hosts_the_local_engine_with_llm_aware_autoscaling(tmp_path: Path) -> None:
    spec = _spec(accelerator={"type": "cpu"}, replicas=REPLICAS, engine={"max_num_seqs": 4})
    app = ray_application(spec, data_dir=tmp_path)
    assert (app.variant, app.import_path, app.route_prefix) == ("cpu", CORRAL_APP_PATH, "/smol")
    assert app.base_url("http://127.0.0.1:8000") == "http://127.0.0.1:8000/smol/v1"
    args = app.args
    assert args["served_name"] == "SmolLM2-135M-Instruct"
    assert args["engine"] == "local"
    assert args["engine_config"]["model"] == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert args["engine_config"]["max_batch_size"] == 4
    assert args["data_dir"] == str(tmp_path.resolve())
    deployment = args["deployment"]
    assert deployment["max_ongoing_requests"] == 8
    assert deployment["graceful_shutdown_timeout_s"] > 0
    assert deployment["autoscaling_config"] == {
        "min_replicas": 0,
        "initial_replicas": 0,
        "max_replicas": 3,
        "target_ongoing_requests": 4,
        "upscale_delay_s": 5.0,
        "downscale_delay_s": 60.0,
        "look_back_period_s": 30.0,
        "upscaling_factor": 0.3,
        "policy": {
            "policy_function": POLICY_PATH,
            "policy_kwargs": {"target_ongoing_requests": 4, "target_tokens_in_flight": 2048.0},
        },
    }


def test_cpu_spec_can_host_the_fake_engine(tmp_path: Path) -> None:
    spec = _spec(accelerator={"type": "cpu"})
    app = ray_application(spec, data_dir=tmp_path, cpu_engine="fake", fake_script={"tokens": 3})
    assert (app.args["engine"], app.args["engine_config"]) == ("fake", {"tokens": 3})
    assert "initial_replicas" not in app.args["deployment"]["autoscaling_config"]
    entry = app.to_serve_config()
    assert (entry["name"], entry["import_path"]) == ("smol", CORRAL_APP_PATH)


def test_gpu_spec_uses_ray_serve_llm_with_vllm_arguments(tmp_path: Path) -> None:
    spec = parse_spec(
        {
            "name": "llama",
            "model": {"source": "meta-llama/Llama-3.1-8B-Instruct", "served_name": "llama-8b"},
            "accelerator": {"type": "l4", "count": 2, "tensor_parallel": 2},
            "engine": {"max_model_len": 4096, "extra_args": {"enable_prefix_caching": True}},
            "replicas": REPLICAS,
        }
    )
    app = ray_application(spec, data_dir=tmp_path)
    assert (app.variant, app.import_path, app.served_name) == ("gpu", LLM_APP_PATH, "llama-8b")
    (llm,) = app.args["llm_configs"]
    assert llm["model_loading_config"] == {
        "model_id": "llama-8b",
        "model_source": "meta-llama/Llama-3.1-8B-Instruct",
    }
    assert llm["accelerator_type"] == "L4"
    kwargs = llm["engine_kwargs"]
    assert kwargs["tensor_parallel_size"] == 2
    assert kwargs["max_model_len"] == 4096
    assert kwargs["enable_prefix_caching"] is True
    autoscaling = llm["deployment_config"]["autoscaling_config"]
    assert (autoscaling["min_replicas"], autoscaling["max_replicas"]) == (0, 3)
    assert autoscaling["initial_replicas"] == 0
    assert llm["deployment_config"]["max_ongoing_requests"] == 8

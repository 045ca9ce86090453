#!/usr/bin/env bash
# GPU check for the Ray Serve engine (issue 10): deploy a small model with Ray Serve LLM + vLLM on
# one NVIDIA GPU, then measure output tokens/s directly against Serve and through Corral's
# gateway with the same concurrent load. Target: gateway >= 97% of direct.
#
# Needs: an NVIDIA GPU, this repo's venv with corral[ray] and vLLM:
#   pip install -e '.[ray,test]' 'ray[serve,llm]' vllm   (never torch without ==2.13.0)
# Usage: scripts/gpu-check-ray.sh [MODEL] [CONCURRENCY] [REQUESTS]
set -euo pipefail
MODEL="${1:-Qwen/Qwen2.5-0.5B-Instruct}"
CONCURRENCY="${2:-32}"
REQUESTS="${3:-256}"
PY="${PYTHON:-.venv/bin/python}"
WORK="$(mktemp -d)"
cleanup() { ray stop >/dev/null 2>&1 || true; rm -rf "$WORK"; }
trap cleanup EXIT

nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
cat >"$WORK/spec.yaml" <<YAML
name: gpu-check
model: {source: $MODEL, served_name: gpu-check}
accelerator: {type: l4, count: 1}
engine: {max_model_len: 4096, max_num_seqs: 64, gpu_memory_utilization: 0.85}
replicas: {min: 1, max: 1, max_ongoing_requests: 256, target_ongoing_requests: 64}
YAML
# The spec names an accelerator type (l4): the local head advertises it the way the rendered
# KubeRay worker group does (rayStartParams.resources), so the serve config runs unmodified.
ray start --head --num-gpus=1 --resources='{"accelerator_type:L4": 1}' --disable-usage-stats >/dev/null
"$PY" - "$WORK/spec.yaml" <<'PY'
import sys
from pathlib import Path
from corral.control.ray_target import ray_application
from corral.control.spec import load_spec
from corral.engines.ray.deployer import RayServeTarget
app = ray_application(load_spec(Path(sys.argv[1])), data_dir=Path(".corral"))
target = RayServeTarget(http_port=8000)
target.connect("auto")
print("deployed at", target.deploy(app))
target.wait_running("gpu-check", 1800, print)
PY

"$PY" - "$CONCURRENCY" "$REQUESTS" <<'PY'
"""Tokens/s against Serve directly, then through a gateway on loopback (same load)."""
import asyncio, sys, time
from contextlib import asynccontextmanager
import openai
from corral.catalog import Endpoint, EndpointHealth, ModelSpec, OpenAIEngine
from corral.composition.platform import running_platform
from corral.composition.serving import ServerThread
from corral.principals import KeyDirectory, Principal, Role, new_api_key
from corral.settings import CorralSettings

CONCURRENCY, REQUESTS = int(sys.argv[1]), int(sys.argv[2])
DIRECT = "http://127.0.0.1:8000/gpu-check/v1"

async def run(base_url: str, key: str) -> float:
    client = openai.AsyncOpenAI(base_url=base_url, api_key=key, max_retries=0, timeout=600)
    sem, tokens = asyncio.Semaphore(CONCURRENCY), 0
    async def one(i: int) -> None:
        nonlocal tokens
        async with sem:
            stream = await client.chat.completions.create(
                model="gpu-check", max_tokens=256, temperature=0, stream=True,
                stream_options={"include_usage": True},
                messages=[{"role": "user", "content": f"Write a story about lighthouse {i}."}])
            async for chunk in stream:
                if chunk.usage is not None:
                    tokens += chunk.usage.completion_tokens
    await one(-1)  # warm-up
    tokens, start = 0, time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(REQUESTS)))
    elapsed = time.perf_counter() - start
    await client.close()
    return tokens / elapsed

keys = KeyDirectory(b"gpu-check")
key = new_api_key()
keys.add(keys.hash(key), Principal(key_id="k", role=Role.PLATFORM_ADMIN, team_id="t"))
settings = CorralSettings(models=[ModelSpec(
    name="gpu-check", engine=OpenAIEngine(endpoints=[Endpoint(url=DIRECT)]),
    health=EndpointHealth(probe_interval=0))])

@asynccontextmanager
async def factory():
    async with running_platform(settings, keys=keys) as platform:
        yield platform

direct = asyncio.run(run(DIRECT, "unused"))
with ServerThread(factory) as server:
    gateway = asyncio.run(run(f"{server.url}/v1", key))
print(f"direct (Ray Serve LLM + vLLM): {direct:.0f} output tokens/s")
print(f"through the Corral gateway:    {gateway:.0f} output tokens/s")
print(f"ratio: {gateway / direct:.1%} (target >= 97%)")
sys.exit(0 if gateway >= 0.97 * direct else 1)
PY

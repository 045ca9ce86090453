"""Corral's Ray Serve engine on a real local Ray cluster, called through the gateway.

The replicas host the FakeEngine (scripted tokens and delays): on this 2-core machine, several
replicas of the real local model would take minutes to load; the Serve application, relay,
autoscaling policy and cold-start path are the same for both engines.
"""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import openai
import pytest

from corral.catalog import Endpoint, EndpointHealth, ModelSpec, OpenAIEngine
from corral.clock import SystemClock
from corral.composition.platform import Platform, running_platform
from corral.composition.serving import ServerThread
from corral.control.ray_target import ray_application
from corral.control.spec import parse_spec
from corral.engines.ray.cold_start import HealthProbe
from corral.engines.ray.deployer import RayServeTarget
from corral.gateway.cold_start import ColdStartGate
from corral.principals import KeyDirectory, Principal, Role, new_api_key
from corral.settings import ColdStartSettings, CorralSettings

ray = pytest.importorskip("ray", reason="the ray extra is not installed: pip install 'corral[ray]'")

pytestmark = [
    pytest.mark.ray,
    # Our replicas push metrics every second (RAY_SERVE_*_METRIC_PUSH_INTERVAL_S below); Ray
    # still compares look_back_period_s with its deprecated 10 s metrics_interval_s and warns.
    pytest.mark.filterwarnings("ignore:`look_back_period_s`.*:FutureWarning"),
    # Importing ray.serve declares pydantic fields with Ray's own extra keyword (update_type).
    pytest.mark.filterwarnings(
        "ignore:Using extra keyword arguments on `Field`"
        ":pydantic.warnings.PydanticDeprecatedSince20"
    ),
]

FAST_METRICS = {
    "RAY_SERVE_REPLICA_AUTOSCALING_METRIC_PUSH_INTERVAL_S": "0.5",
    "RAY_SERVE_HANDLE_AUTOSCALING_METRIC_PUSH_INTERVAL_S": "0.5",
}
SCRIPT = {"tokens": 20, "token_delay": 0.1}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Cluster:
    target: RayServeTarget
    data_dir: Path

    def deploy(self, name: str, replicas: dict[str, object]) -> str:
        spec = parse_spec(
            {
                "name": name,
                "model": {"source": "corral/fake-chat", "served_name": name},
                "accelerator": {"type": "cpu"},
                "replicas": replicas,
            }
        )
        app = ray_application(spec, data_dir=self.data_dir, cpu_engine="fake", fake_script=SCRIPT)
        app.args["deployment"]["autoscaling_config"]["look_back_period_s"] = 2.0
        app.args["deployment"]["ray_actor_options"]["num_cpus"] = 0.5
        url = self.target.deploy(app)
        self.target.wait_running(name, 120, lambda line: None)
        return url

    def running(self, name: str) -> int:
        state = self.target.application(name)
        return state.running_replicas if state else 0

    def wait_for(self, name: str, check: Callable[[int], bool], timeout_s: float) -> float:
        """Seconds until ``check(running replicas)`` holds; fails the test after timeout_s."""
        start = time.monotonic()
        while not check(self.running(name)):
            assert time.monotonic() - start < timeout_s, f"{name}: {self.running(name)} replicas"
            time.sleep(0.25)
        return time.monotonic() - start


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    os.environ.update(FAST_METRICS)
    ray.init(
        num_cpus=2,
        object_store_memory=80 * 1024 * 1024,
        include_dashboard=False,
        logging_level="ERROR",
        log_to_driver=False,
    )
    try:
        target = RayServeTarget(http_port=_free_port())
        target.connect(None)
        yield Cluster(target, tmp_path_factory.mktemp("ray-data"))
    finally:
        from ray import serve

        serve.shutdown()
        ray.shutdown()
        for key in FAST_METRICS:
            os.environ.pop(key, None)


def _gateway(models: dict[str, str]) -> tuple[ServerThread, str]:
    keys = KeyDirectory(b"test-secret")
    key = new_api_key()
    keys.add(keys.hash(key), Principal(key_id="k", role=Role.PLATFORM_ADMIN, team_id="t"))
    settings = CorralSettings(
        models=[
            ModelSpec(
                name=name,
                engine=OpenAIEngine(endpoints=[Endpoint(url=url)]),
                # An active probe would wake a model scaled to zero.
                health=EndpointHealth(probe_interval=0),
            )
            for name, url in models.items()
        ]
    )

    @asynccontextmanager
    async def factory() -> AsyncIterator[Platform]:
        async with running_platform(settings, keys=keys) as platform:
            yield platform

    return ServerThread(factory), key


def _ask(client: openai.OpenAI, model: str) -> str:
    reply = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "hi"}], max_tokens=20
    )
    return reply.choices[0].message.content or ""


def test_serves_through_the_gateway_and_scales_up_and_down(cluster: Cluster) -> None:
    replicas = {"min": 1, "max": 2, "target_ongoing_requests": 2, "max_ongoing_requests": 4}
    url = cluster.deploy("elastic", {**replicas, "upscale_delay_s": 0, "downscale_delay_s": 2})
    server, key = _gateway({"elastic": url})
    with server:
        client = openai.OpenAI(base_url=f"{server.url}/v1", api_key=key, max_retries=0)
        try:
            assert _ask(client, "elastic").startswith("Hello from the fake engine")
            stream = client.chat.completions.create(
                model="elastic",
                messages=[{"role": "user", "content": "hi"}],
                stream=True,
                stream_options={"include_usage": True},
            )
            chunks = list(stream)
            assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
            assert chunks[-1].usage is not None
            assert chunks[-1].usage.completion_tokens == 20

            stop = threading.Event()

            def load() -> None:
                while not stop.is_set():
                    _ask(client, "elastic")

            workers = [threading.Thread(target=load) for _ in range(6)]
            for worker in workers:
                worker.start()
            try:
                up = cluster.wait_for("elastic", lambda n: n >= 2, 60)
            finally:
                stop.set()
                for worker in workers:
                    worker.join(30)
            down = cluster.wait_for("elastic", lambda n: n == 1, 60)
            print(f"scale-up 1→2 under load: {up:.1f} s; back to 1 after load: {down:.1f} s")
        finally:
            client.close()
    assert cluster.target.delete("elastic")


def test_scale_to_zero_holds_then_serves_or_refuses_cleanly(cluster: Cluster) -> None:
    replicas = {"min": 0, "max": 1, "target_ongoing_requests": 2, "max_ongoing_requests": 4}
    url = cluster.deploy("sleepy", {**replicas, "upscale_delay_s": 0, "downscale_delay_s": 2})
    assert cluster.running("sleepy") == 0

    async def hold(deadline_s: float) -> tuple[bool, float, ColdStartGate]:
        async with aiohttp.ClientSession() as session:
            clock = SystemClock()
            gate = ColdStartGate(
                HealthProbe({"sleepy": url}, session), clock, ColdStartSettings(max_wait_s=90)
            )
            start = clock.monotonic()
            ready = await gate.ensure_ready("sleepy", start + deadline_s)
            waited = clock.monotonic() - start
            await gate.close()
            return ready, waited, gate

    ready, waited, _ = asyncio.run(hold(90))
    assert ready
    assert cluster.running("sleepy") == 1
    print(f"cold start held for {waited:.1f} s")
    server, key = _gateway({"sleepy": url})
    with server:
        client = openai.OpenAI(base_url=f"{server.url}/v1", api_key=key, max_retries=0)
        try:
            assert _ask(client, "sleepy").startswith("Hello")
            down = cluster.wait_for("sleepy", lambda n: n == 0, 60)
            print(f"idle to zero replicas: {down:.1f} s")
            # Cold again: the gateway's relay waits while Serve's proxy starts a replica.
            started = time.monotonic()
            assert _ask(client, "sleepy").startswith("Hello")
            print(f"first request after idle served in {time.monotonic() - started:.1f} s")
        finally:
            client.close()
    cluster.wait_for("sleepy", lambda n: n == 0, 60)
    ready, waited, gate = asyncio.run(hold(0.5))
    assert not ready
    assert waited < 5
    refusal = gate.refusal("sleepy")
    assert (refusal.status, refusal.retry_after) == (503, 10.0)
    assert cluster.target.delete("sleepy")

"""The local engine's /metrics over HTTP: on loopback with a fake decoder, and the real engine."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass

import aiohttp
import numpy as np
import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from corral.engines.local.chat_service import ChatService
from corral.engines.local.chat_template import ChatTemplate
from corral.engines.local.launcher import RunningEngine
from corral.engines.local.metrics import SchedulerCollector
from corral.engines.local.runtime import GenerationLoop
from corral.engines.local.scheduler import Scheduler
from corral.engines.local.server import EngineLimits, EngineServer
from support.local_engine_fakes import CountingDecoder, LetterStream

MODEL = "tiny"


class GatedDecoder(CountingDecoder):
    """Decodes only while ``gate`` is open, so a test can hold sequences in their slots."""

    def __init__(self, max_batch: int) -> None:
        super().__init__(max_batch)
        self.gate = threading.Event()
        self.gate.set()

    def decode(self, tokens: Sequence[int], cached: Sequence[int]) -> np.ndarray:
        self.gate.wait(timeout=30)
        return super().decode(tokens, cached)


class LetterTokenizer:
    """One token per character (its code point mod 40, below the fake decoder's vocabulary)."""

    def encode(self, text: str, *, special: bool) -> list[int]:
        return [ord(c) % 40 for c in text]

    def stream(self) -> LetterStream:
        return LetterStream()


@dataclass
class Engine:
    url: str
    decoder: GatedDecoder
    http: aiohttp.ClientSession

    async def metrics(self) -> dict[str, float]:
        async with self.http.get(f"{self.url}/metrics") as response:
            assert response.status == 200
            assert response.headers["Content-Type"].startswith("text/plain; version=")
            return samples(await response.text())

    async def chat(self, max_tokens: int) -> dict[str, object]:
        body = {
            "model": MODEL,
            "messages": [{"role": "user", "content": "hi"}],
            "max_tokens": max_tokens,
        }
        async with self.http.post(f"{self.url}/v1/chat/completions", json=body) as response:
            assert response.status == 200, await response.text()
            reply: dict[str, object] = await response.json()
            return reply


def samples(text: str) -> dict[str, float]:
    """Series name → value for the samples labelled with this test's model."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            assert sample.labels.get("model") == MODEL, sample
            if set(sample.labels) == {"model"}:
                found[sample.name] = sample.value
            elif sample.labels.get("le") == "+Inf":
                found[sample.name + "{le=+Inf}"] = sample.value
    return found


@pytest.fixture
async def engine() -> AsyncIterator[Engine]:
    decoder = GatedDecoder(max_batch=1)
    scheduler = Scheduler(decoder, eos_ids=frozenset(), max_queue=4)
    service = ChatService(
        scheduler, LetterTokenizer(), ChatTemplate(None), context_length=512, model_name=MODEL
    )
    registry = CollectorRegistry()
    registry.register(SchedulerCollector(MODEL, scheduler))
    server = EngineServer(
        model_name=MODEL, limits=EngineLimits(max_n=1), chat=service, metrics=registry
    )
    loop = GenerationLoop(scheduler)
    loop.start()
    runner = web.AppRunner(server.build_app())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    async with aiohttp.ClientSession() as http:
        yield Engine(f"http://127.0.0.1:{port}", decoder, http)
    decoder.gate.set()
    await runner.cleanup()
    loop.stop()


async def test_metrics_count_the_tokens_of_a_finished_request(engine: Engine) -> None:
    before = await engine.metrics()
    assert before["corral_engine_generated_tokens_total"] == 0
    assert before["corral_engine_slot_capacity"] == 1
    reply = await engine.chat(max_tokens=7)
    usage = reply["usage"]
    assert isinstance(usage, dict)
    # The client has its answer a moment before the scheduler's next step frees the slot.
    after = await _until(engine, lambda m: m["corral_engine_slots_used"] == 0)
    assert after["corral_engine_generated_tokens_total"] == usage["completion_tokens"] == 7
    assert after["corral_engine_prompt_tokens_total"] == usage["prompt_tokens"]
    assert after["corral_engine_queue_time_seconds_count"] == 1
    assert after["corral_engine_decode_step_seconds_count"] == 6  # the prefill sampled one
    assert after["corral_engine_prefill_step_seconds_bucket{le=+Inf}"] == 1
    assert after["corral_engine_queue_depth"] == 0
    assert after["corral_engine_slots_used"] == 0


async def test_metrics_show_the_queue_and_the_slot_in_use_while_busy(engine: Engine) -> None:
    engine.decoder.gate.clear()  # the first request takes the only slot and stays there
    requests = [asyncio.create_task(engine.chat(max_tokens=3)) for _ in range(2)]
    busy = await _until(engine, lambda m: m["corral_engine_queue_depth"] == 1)
    assert busy["corral_engine_slots_used"] == 1
    assert busy["corral_engine_batch_size"] == 1
    engine.decoder.gate.set()
    await asyncio.gather(*requests)
    # A client has its answer a moment before the scheduler's next step frees the slot.
    idle = await _until(engine, lambda m: m["corral_engine_slots_used"] == 0)
    assert (idle["corral_engine_queue_depth"], idle["corral_engine_slots_used"]) == (0, 0)
    assert idle["corral_engine_generated_tokens_total"] == 6
    assert idle["corral_engine_queue_time_seconds_count"] == 2


async def _until(engine: Engine, ready: Callable[[dict[str, float]], bool]) -> dict[str, float]:
    async with asyncio.timeout(10):
        while True:
            metrics = await engine.metrics()
            if ready(metrics):
                return metrics
            await asyncio.sleep(0.01)


@pytest.mark.local_model
async def test_the_real_engine_exports_its_scheduler_metrics(chat_engine: RunningEngine) -> None:
    root = chat_engine.base_url.removesuffix("/v1")
    body = {
        "model": "smollm2",
        "messages": [{"role": "user", "content": "Say hello."}],
        "max_tokens": 8,
        "temperature": 0,
    }
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{root}/metrics") as response:
            before = _by_name(await response.text())
        async with http.post(f"{chat_engine.base_url}/chat/completions", json=body) as response:
            usage = (await response.json())["usage"]
        async with http.get(f"{root}/metrics") as response:
            after = _by_name(await response.text())
    generated = after["corral_engine_generated_tokens_total"]
    assert generated - before["corral_engine_generated_tokens_total"] >= usage["completion_tokens"]
    prompt = after["corral_engine_prompt_tokens_total"]
    assert prompt - before["corral_engine_prompt_tokens_total"] >= usage["prompt_tokens"]
    assert after["corral_engine_slot_capacity"] >= 1
    assert after["corral_engine_decode_step_seconds_count"] > 0


def _by_name(text: str) -> dict[str, float]:
    return {
        sample.name: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if "le" not in sample.labels and sample.labels.get("model") == "smollm2"
    }

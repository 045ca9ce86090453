"""Local engines' expositions merged into one: a family per name, samples of every engine."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from corral.composition.engine_metrics import EngineMetrics

ENGINE = """# HELP corral_engine_queue_depth Requests waiting.
# TYPE corral_engine_queue_depth gauge
corral_engine_queue_depth{{model="{model}"}} {depth}
# HELP corral_engine_prompt_tokens_total Tokens.
# TYPE corral_engine_prompt_tokens_total counter
corral_engine_prompt_tokens_total{{model="{model}"}} 7.0
"""


@asynccontextmanager
async def engine(model: str, depth: int) -> AsyncIterator[str]:
    async def metrics(request: web.Request) -> web.Response:
        return web.Response(text=ENGINE.format(model=model, depth=depth))

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}/metrics"
    finally:
        await runner.cleanup()


async def test_engines_are_merged_per_family_and_a_silent_one_is_left_out() -> None:
    async with (
        engine("chat", 2) as chat,
        engine("embed", 0) as embed,
        aiohttp.ClientSession() as session,
    ):
        gone = "http://127.0.0.1:9/metrics"  # nothing listens on the discard port
        text = (await EngineMetrics(session, [chat, embed, gone]).exposition()).decode()
    assert text.count("# TYPE corral_engine_queue_depth gauge") == 1
    families = {f.name: f for f in text_string_to_metric_families(text)}
    depth = {s.labels["model"]: s.value for s in families["corral_engine_queue_depth"].samples}
    assert depth == {"chat": 2.0, "embed": 0.0}
    tokens = families["corral_engine_prompt_tokens"].samples
    assert sorted((s.name, s.labels["model"]) for s in tokens) == [
        ("corral_engine_prompt_tokens_total", "chat"),
        ("corral_engine_prompt_tokens_total", "embed"),
    ]


async def test_no_local_engines_add_nothing() -> None:
    async with aiohttp.ClientSession() as session:
        assert await EngineMetrics(session, []).exposition() == b""

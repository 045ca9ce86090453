"""One span per request with a child per stage, and the trace continued on the engine."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import openai
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from corral.catalog import Endpoint, ModelSpec, OpenAIEngine
from corral.composition.platform import Platform, running_platform
from corral.composition.serving import ServerThread
from corral.engines.fake import FakeEngine
from corral.gateway.tracing import tracer_with_exporter
from corral.principals import KeyDirectory, Principal, Role, new_api_key
from corral.settings import CorralSettings

CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


def test_request_span_children_and_traceparent_reach_the_engine() -> None:
    exporter = InMemorySpanExporter()
    tracer = tracer_with_exporter(exporter)
    engine = FakeEngine(model="fake-chat")
    keys = KeyDirectory(b"secret")
    key = new_api_key()
    keys.add(keys.hash(key), Principal(key_id="key_1", role=Role.DEVELOPER, team_id="t"))

    @asynccontextmanager
    async def factory() -> AsyncIterator[Platform]:
        await engine.start()
        spec = ModelSpec(
            name="fake-chat", engine=OpenAIEngine(endpoints=[Endpoint(url=engine.base_url)])
        )
        try:
            async with running_platform(
                CorralSettings(models=[spec]), keys=keys, tracer=tracer
            ) as platform:
                yield platform
        finally:
            await engine.stop()

    traceparent = f"00-{CALLER_TRACE}-00f067aa0ba902b7-01"
    with (
        ServerThread(factory) as server,
        openai.OpenAI(base_url=f"{server.url}/v1", api_key=key, max_retries=0) as client,
    ):
        client.chat.completions.create(
            model="fake-chat",
            messages=[{"role": "user", "content": "hi"}],
            extra_headers={"traceparent": traceparent, "tracestate": "secret=1"},
        )
    tracer.shutdown()
    spans = {span.name: span for span in exporter.get_finished_spans()}
    request = spans["POST /v1/chat/completions"]
    assert format(request.context.trace_id, "032x") == CALLER_TRACE
    for stage in ("admission", "upstream", "metering"):
        assert spans[stage].parent is not None
        assert spans[stage].parent.span_id == request.context.span_id
    seen = engine.state.requests[-1].headers
    assert seen["traceparent"].split("-")[1] == CALLER_TRACE
    assert seen["traceparent"].split("-")[2] == format(spans["upstream"].context.span_id, "016x")
    assert "secret=1" not in seen.get("tracestate", "")

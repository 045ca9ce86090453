"""Gateway tracing: span structure, W3C propagation, error status, and when it turns on."""

from __future__ import annotations

import asyncio
import sys

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from corral.errors import ConfigError
from corral.gateway.tracing import (
    STAGES,
    NoopTracer,
    OtelTracer,
    tracer_from_environment,
    tracer_with_exporter,
)

CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


def _by_name(spans: tuple[ReadableSpan, ...]) -> dict[str, ReadableSpan]:
    return {span.name: span for span in spans}


def _ids(span: ReadableSpan) -> tuple[int, int]:
    context = span.get_span_context()
    assert context is not None
    return context.trace_id, context.span_id


def test_one_request_span_with_a_child_per_stage(exporter: InMemorySpanExporter) -> None:
    tracer = tracer_with_exporter(exporter)
    upstream: dict[str, str] = {"X-Request-Id": "req_1"}
    with tracer.request_span("POST", "/v1/chat/completions", request_id="req_1") as span:
        for stage in STAGES:
            with tracer.child(stage) as child:
                if stage == "upstream":
                    tracer.inject(upstream)
                    child.set("server.address", "engine-0")
        span.set("gen_ai.request.model", "fake-chat")
        span.finish(200, "ok")
    spans = _by_name(exporter.get_finished_spans())
    assert set(spans) == {"POST /v1/chat/completions", *STAGES}
    root = spans["POST /v1/chat/completions"]
    trace_id, root_id = _ids(root)
    assert root.parent is None
    assert root.kind is SpanKind.SERVER
    assert root.attributes is not None
    assert root.attributes["corral.request_id"] == "req_1"
    assert root.attributes["gen_ai.request.model"] == "fake-chat"
    assert root.attributes["http.response.status_code"] == 200
    assert root.status.status_code is StatusCode.UNSET
    for stage in STAGES:
        assert spans[stage].parent is not None
        assert spans[stage].parent.span_id == root_id
        assert _ids(spans[stage])[0] == trace_id
    assert spans["upstream"].kind is SpanKind.CLIENT
    assert spans["admission"].kind is SpanKind.INTERNAL
    # The engine sees the upstream span as its parent, in the same trace.
    version, header_trace, header_span, flags = upstream["traceparent"].split("-")
    assert version == "00"
    assert int(flags, 16) & 1, "sampled"
    assert int(header_trace, 16) == trace_id
    assert int(header_span, 16) == _ids(spans["upstream"])[1]
    assert upstream["X-Request-Id"] == "req_1"


def test_a_callers_traceparent_is_continued(exporter: InMemorySpanExporter) -> None:
    tracer = tracer_with_exporter(exporter)
    incoming = [
        (b"authorization", b"Bearer ck-secret"),
        (b"traceparent", f"00-{CALLER_TRACE}-{CALLER_SPAN}-01".encode()),
        (b"tracestate", b"vendor=chosen-by-the-caller"),
    ]
    upstream: dict[str, str] = {}
    with (
        tracer.request_span("POST", "/v1/embeddings", request_id="r", incoming=incoming),
        tracer.child("upstream"),
    ):
        tracer.inject(upstream)
    root = _by_name(exporter.get_finished_spans())["POST /v1/embeddings"]
    assert _ids(root)[0] == int(CALLER_TRACE, 16)
    assert root.parent is not None
    assert root.parent.span_id == int(CALLER_SPAN, 16)
    assert root.parent.is_remote
    assert "Bearer" not in str(root.attributes)
    # The caller's trace id goes on; its tracestate does not reach the engine.
    assert upstream["traceparent"].split("-")[1] == CALLER_TRACE
    assert "tracestate" not in upstream


def test_server_errors_mark_the_span_and_stage_exceptions_are_recorded(
    exporter: InMemorySpanExporter,
) -> None:
    tracer = tracer_with_exporter(exporter)
    with tracer.request_span("POST", "/v1/chat/completions", request_id="r") as span:
        with pytest.raises(TimeoutError), tracer.child("upstream"):
            raise TimeoutError("engine silent")
        span.finish(504, "timeout")
    spans = _by_name(exporter.get_finished_spans())
    root = spans["POST /v1/chat/completions"]
    assert root.status.status_code is StatusCode.ERROR
    assert root.status.description == "timeout"
    upstream = spans["upstream"]
    assert upstream.status.status_code is StatusCode.ERROR
    assert [event.name for event in upstream.events] == ["exception"]


def test_client_errors_do_not_mark_the_request_span(exporter: InMemorySpanExporter) -> None:
    tracer = tracer_with_exporter(exporter)
    with tracer.request_span("POST", "/v1/chat/completions", request_id="r") as span:
        span.finish(401, "client_error")
    [root] = exporter.get_finished_spans()
    assert root.status.status_code is StatusCode.UNSET
    assert root.attributes is not None
    assert root.attributes["corral.outcome"] == "client_error"


async def test_concurrent_requests_keep_their_own_children(
    exporter: InMemorySpanExporter,
) -> None:
    tracer = tracer_with_exporter(exporter)

    async def request(request_id: str) -> None:
        with tracer.request_span("POST", "/v1/completions", request_id=request_id):
            for stage in STAGES:
                with tracer.child(stage):
                    await asyncio.sleep(0)

    await asyncio.gather(*(request(f"r{i}") for i in range(5)))
    spans = exporter.get_finished_spans()
    roots = {_ids(s)[1]: s for s in spans if s.parent is None}
    assert len(roots) == 5
    children = [s for s in spans if s.parent is not None]
    assert len(children) == 5 * len(STAGES)
    per_root: dict[int, list[str]] = {}
    for child in children:
        assert child.parent is not None
        assert _ids(child)[0] == _ids(roots[child.parent.span_id])[0]
        per_root.setdefault(child.parent.span_id, []).append(child.name)
    assert all(sorted(names) == sorted(STAGES) for names in per_root.values())


def test_the_noop_tracer_does_nothing() -> None:
    tracer = NoopTracer()
    headers = {"a": "b"}
    with tracer.request_span("POST", "/v1/x", request_id="r") as span:
        with tracer.child("admission") as child:
            child.set("k", 1)
        tracer.inject(headers)
        span.finish(500, "upstream_error")
    tracer.shutdown()
    assert headers == {"a": "b"}


@pytest.mark.parametrize(
    "environ",
    [
        {},
        {"OTEL_SERVICE_NAME": "corral"},
        {"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1"},
        {"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "console"},
    ],
)
def test_tracing_is_off_unless_asked_for(environ: dict[str, str]) -> None:
    assert isinstance(tracer_from_environment(environ), NoopTracer)


@pytest.mark.parametrize(
    "environ",
    [
        {"OTEL_TRACES_EXPORTER": "console"},
        {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"},
        {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318/v1/traces"},
        {"OTEL_TRACES_EXPORTER": "otlp,console", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"},
    ],
)
def test_tracing_is_on_when_an_exporter_or_endpoint_is_set(environ: dict[str, str]) -> None:
    tracer = tracer_from_environment(environ)
    try:
        assert isinstance(tracer, OtelTracer)
    finally:
        tracer.shutdown()


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"OTEL_TRACES_EXPORTER": "zipkin"}, "names zipkin; Corral supports otlp, console"),
        (
            {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"},
            "'http/json' is not supported",
        ),
    ],
)
def test_unsupported_settings_are_refused(environ: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        tracer_from_environment(environ)


def test_asking_for_traces_without_opentelemetry_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "opentelemetry.sdk.trace", None)
    with pytest.raises(ConfigError, match=r"pip install 'corral\[otel\]'"):
        tracer_from_environment({"OTEL_TRACES_EXPORTER": "console"})

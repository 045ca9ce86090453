"""OpenTelemetry tracing for gateway requests: one span per request, a child span per stage.

Optional: without the ``otel`` extra, or without any OTEL_* setting asking for traces, the
gateway gets ``NoopTracer`` and pays nothing. With OpenTelemetry installed, tracing turns on when
OTEL_TRACES_EXPORTER names an exporter (``otlp``, ``console``) or an OTLP endpoint is set
(OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_EXPORTER_OTLP_TRACES_ENDPOINT); the SDK reads every other
standard variable itself (service name, resource attributes, sampler, batch processor, headers).
The request span continues a caller's W3C ``traceparent`` (never its ``tracestate``); ``inject``
puts the current span's context on the upstream request, so an engine's spans join the trace.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import TYPE_CHECKING, Any, Protocol

from corral.errors import ConfigError

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter
    from opentelemetry.trace import Span as OtelSpan

STAGES = ("admission", "routing", "upstream", "metering")
_EXPORTERS = ("otlp", "console")
_ENDPOINTS = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
_INSTALL = "install the extra (pip install 'corral[otel]')"

Attribute = str | int | float | bool


class Span(Protocol):
    """The part of a span the gateway touches."""

    def set(self, key: str, value: Attribute) -> None:
        """Add an attribute (never a key, prompt or URL)."""

    def finish(self, status: int, outcome: str) -> None:
        """Record how the request ended; a 5xx marks the span as an error."""


class RequestTracer(Protocol):
    """Opens request and stage spans and propagates their context upstream."""

    def request_span(
        self,
        method: str,
        route: str,
        *,
        request_id: str,
        incoming: Iterable[tuple[bytes, bytes]] = (),
    ) -> AbstractContextManager[Span]:
        """The span for one API request; ``incoming``: its ASGI headers (for traceparent)."""

    def child(self, name: str) -> AbstractContextManager[Span]:
        """A span for one stage of the current request (see ``STAGES``)."""

    def inject(self, headers: dict[str, str]) -> None:
        """Add W3C ``traceparent``/``tracestate`` for the current span to upstream headers."""

    def shutdown(self) -> None:
        """Flush and stop exporting (at process exit)."""


class _NoSpan:
    def set(self, key: str, value: Attribute) -> None:
        del key, value

    def finish(self, status: int, outcome: str) -> None:
        del status, outcome


_NO_SPAN = _NoSpan()
_NO_SPAN_CONTEXT = nullcontext(_NO_SPAN)  # reusable: nullcontext keeps no state between uses


class NoopTracer:
    """Tracing switched off: every call does nothing."""

    def request_span(
        self,
        method: str,
        route: str,
        *,
        request_id: str,
        incoming: Iterable[tuple[bytes, bytes]] = (),
    ) -> AbstractContextManager[Span]:
        return _NO_SPAN_CONTEXT

    def child(self, name: str) -> AbstractContextManager[Span]:
        return _NO_SPAN_CONTEXT

    def inject(self, headers: dict[str, str]) -> None:
        del headers

    def shutdown(self) -> None:
        return None


class _SpanHandle:
    def __init__(self, span: OtelSpan) -> None:
        self._span = span

    def set(self, key: str, value: Attribute) -> None:
        self._span.set_attribute(key, value)

    def finish(self, status: int, outcome: str) -> None:
        from opentelemetry.trace import Status, StatusCode

        self._span.set_attribute("http.response.status_code", status)
        self._span.set_attribute("corral.outcome", outcome)
        if status >= 500:
            self._span.set_status(Status(StatusCode.ERROR, outcome))


class OtelTracer:
    """Spans from an OpenTelemetry SDK tracer provider owned by this tracer (no global state)."""

    def __init__(self, provider: TracerProvider) -> None:
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        self._provider = provider
        self._tracer = provider.get_tracer("corral.gateway")
        self._propagator = TraceContextTextMapPropagator()

    @contextmanager
    def request_span(
        self,
        method: str,
        route: str,
        *,
        request_id: str,
        incoming: Iterable[tuple[bytes, bytes]] = (),
    ) -> Iterator[Span]:
        from opentelemetry.trace import SpanKind

        # Only traceparent (a strictly parsed id): a caller's tracestate would otherwise be
        # copied onto the upstream request, and tenants never choose upstream headers.
        parent_id = next((value for name, value in incoming if name == b"traceparent"), None)
        carrier = {"traceparent": parent_id.decode("latin-1")} if parent_id else {}
        parent = self._propagator.extract(carrier) if carrier else None
        attributes: dict[str, Attribute] = {
            "http.request.method": method,
            "http.route": route,
            "corral.request_id": request_id,
        }
        with self._tracer.start_as_current_span(
            f"{method} {route}", context=parent, kind=SpanKind.SERVER, attributes=attributes
        ) as span:
            yield _SpanHandle(span)

    @contextmanager
    def child(self, name: str) -> Iterator[Span]:
        from opentelemetry.trace import SpanKind

        kind = SpanKind.CLIENT if name == "upstream" else SpanKind.INTERNAL
        with self._tracer.start_as_current_span(name, kind=kind) as span:
            yield _SpanHandle(span)

    def inject(self, headers: dict[str, str]) -> None:
        self._propagator.inject(headers)

    def shutdown(self) -> None:
        self._provider.shutdown()


def tracer_from_environment(
    environ: Mapping[str, str] | None = None, *, service_name: str = "corral-gateway"
) -> RequestTracer:
    """The tracer the OTEL_* variables ask for: ``NoopTracer`` unless they ask for traces."""
    env = os.environ if environ is None else environ
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return NoopTracer()
    names = _exporter_names(env)
    if not names:
        return NoopTracer()
    try:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError as exc:
        raise ConfigError(
            f"OTEL_* settings ask for traces but OpenTelemetry is not installed: {_INSTALL}, "
            "or unset OTEL_TRACES_EXPORTER and the OTLP endpoint."
        ) from exc
    default = {} if env.get("OTEL_SERVICE_NAME") else {"service.name": service_name}
    provider = TracerProvider(resource=Resource.create(default))
    for name in names:
        provider.add_span_processor(BatchSpanProcessor(_exporter(name, env)))
    return OtelTracer(provider)


def tracer_with_exporter(
    exporter: SpanExporter, *, service_name: str = "corral-gateway"
) -> OtelTracer:
    """A tracer that hands each finished span to ``exporter`` at once (tests, embedding)."""
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return OtelTracer(provider)


def _exporter_names(env: Mapping[str, str]) -> list[str]:
    raw = env.get("OTEL_TRACES_EXPORTER", "").strip()
    if not raw:
        return ["otlp"] if any(env.get(name) for name in _ENDPOINTS) else []
    names = [n.strip().lower() for n in raw.split(",") if n.strip().lower() not in ("", "none")]
    unknown = [n for n in names if n not in _EXPORTERS]
    if unknown:
        raise ConfigError(
            f"OTEL_TRACES_EXPORTER names {', '.join(unknown)}; Corral supports "
            f"{', '.join(_EXPORTERS)} and none."
        )
    return names


def _exporter(name: str, env: Mapping[str, str]) -> SpanExporter:
    if name == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter()
    protocol = (
        env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        or env.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or "http/protobuf"
    ).strip()
    modules = {
        "http/protobuf": "opentelemetry.exporter.otlp.proto.http.trace_exporter",
        "grpc": "opentelemetry.exporter.otlp.proto.grpc.trace_exporter",
    }
    if protocol not in modules:
        raise ConfigError(
            f"OTLP protocol {protocol!r} is not supported for traces; use http/protobuf or grpc."
        )
    try:
        module: Any = importlib.import_module(modules[protocol])
    except ImportError as exc:
        package = "opentelemetry-exporter-otlp-proto-" + protocol.split("/")[0]
        raise ConfigError(
            f"OTLP over {protocol} needs the {package} package: pip install it, or set "
            "OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf (included in corral[otel])."
        ) from exc
    exporter: SpanExporter = module.OTLPSpanExporter()
    return exporter

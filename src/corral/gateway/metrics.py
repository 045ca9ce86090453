"""The gateway's Prometheus metrics, on a registry passed in (no module globals)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from corral.gateway.metering import UsageEvent

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
_TTFT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.15, 0.25, 0.5, 1, 2, 5, 10, 30)


def status_class(status: int) -> str:
    """``2xx``, ``4xx``, ``5xx``: a label with three values instead of dozens."""
    return f"{status // 100}xx"


class GatewayMetrics:
    """Request, token, latency and upstream metrics; labels are low-cardinality only."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "corral_requests",
            "API requests finished, by model, endpoint kind and status class.",
            ["model", "kind", "status_class"],
            registry=registry,
        )
        self.errors = Counter(
            "corral_request_errors",
            "API requests that did not end well, by model and outcome.",
            ["model", "outcome"],
            registry=registry,
        )
        self.duration = Histogram(
            "corral_request_duration_seconds",
            "Time from request to last byte, by model.",
            ["model"],
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self.ttft = Histogram(
            "corral_time_to_first_token_seconds",
            "Time from request to the first streamed byte, by model.",
            ["model"],
            buckets=_TTFT_BUCKETS,
            registry=registry,
        )
        self.tokens = Counter(
            "corral_tokens",
            "Tokens processed, by model and direction (input or output).",
            ["model", "direction"],
            registry=registry,
        )
        self.in_flight = Gauge(
            "corral_requests_in_flight",
            "API requests being served by this process.",
            registry=registry,
        )

    def record(self, event: UsageEvent) -> None:
        """Count one finished request (a Meter)."""
        model = event.model
        self.requests.labels(model, event.kind, status_class(event.status)).inc()
        if event.outcome != "ok":
            self.errors.labels(model, event.outcome).inc()
        self.duration.labels(model).observe(event.latency)
        if event.time_to_first_token is not None:
            self.ttft.labels(model).observe(event.time_to_first_token)
        if event.prompt_tokens:
            self.tokens.labels(model, "input").inc(event.prompt_tokens)
        if event.completion_tokens:
            self.tokens.labels(model, "output").inc(event.completion_tokens)

"""The gateway's Prometheus metrics, on a registry passed in (no module globals)."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from corral.gateway.metering import Settlement, UsageEvent

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
_TPOT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.035, 0.05, 0.075, 0.1, 0.2, 0.5, 1)
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
        self.tpot = Histogram(
            "corral_time_per_output_token_seconds",
            "Mean time between output tokens of a streamed answer, by model.",
            ["model"],
            buckets=_TPOT_BUCKETS,
            registry=registry,
        )
        self.cost = Counter(
            "corral_cost_usd",
            "Cost of finished requests at the model's prices, by model and team.",
            ["model", "team"],
            registry=registry,
        )
        self.team_tokens = Counter(
            "corral_team_tokens",
            "Tokens processed, by team, model and direction (input or output).",
            ["team", "model", "direction"],
            registry=registry,
        )
        self.refusals = Counter(
            "corral_refusals",
            "Requests refused before reaching an engine, by model and reason "
            "(rate_limit_exceeded, budget_exceeded, queue_full, overloaded).",
            ["model", "reason"],
            registry=registry,
        )
        self.retries = Counter(
            "corral_upstream_retries",
            "Attempts retried on another endpoint before the first byte, by model.",
            ["model"],
            registry=registry,
        )
        self.queue_wait = Histogram(
            "corral_queue_wait_seconds",
            "Time a request waited in a saturated model's fair queue, by model.",
            ["model"],
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        # Labelled children looked up once, not on every request (labels are low-cardinality).
        self._per_model: dict[str, _ModelSeries] = {}
        self._per_team: dict[tuple[str, str], _TeamSeries] = {}
        self._requests: dict[tuple[str, str, int], Counter] = {}
        self.in_flight = Gauge(
            "corral_requests_in_flight",
            "API requests being served by this process.",
            registry=registry,
        )
        self.cached_keys = Gauge(
            "corral_key_cache_keys",
            "API keys this process holds in memory to authenticate requests (every active key).",
            registry=registry,
        )

    def record(self, event: UsageEvent, settlement: Settlement | None = None) -> None:
        """Count one finished request (a Meter)."""
        del settlement
        model, team = event.model, event.team_id or "-"
        requests = self._requests.get((model, event.kind, event.status))
        if requests is None:
            requests = self._requests[(model, event.kind, event.status)] = self.requests.labels(
                model, event.kind, status_class(event.status)
            )
        requests.inc()
        if event.outcome != "ok":
            self.errors.labels(model, event.outcome).inc()
        per_model = self._per_model.get(model)
        if per_model is None:
            per_model = self._per_model[model] = _ModelSeries(
                self.duration.labels(model),
                self.ttft.labels(model),
                self.tokens.labels(model, "input"),
                self.tokens.labels(model, "output"),
                self.tpot.labels(model),
            )
        per_team = self._per_team.get((team, model))
        if per_team is None:
            per_team = self._per_team[(team, model)] = _TeamSeries(
                self.team_tokens.labels(team, model, "input"),
                self.team_tokens.labels(team, model, "output"),
                self.cost.labels(model, team),
            )
        per_model.duration.observe(event.latency)
        ttft = event.time_to_first_token
        if ttft is not None:
            per_model.ttft.observe(ttft)
        if event.prompt_tokens:
            per_model.tokens_in.inc(event.prompt_tokens)
            per_team.tokens_in.inc(event.prompt_tokens)
        if event.completion_tokens:
            per_model.tokens_out.inc(event.completion_tokens)
            per_team.tokens_out.inc(event.completion_tokens)
        if event.cost_usd:
            per_team.cost.inc(event.cost_usd)
        if ttft is not None and event.kind != "embeddings" and event.completion_tokens > 1:
            per_model.tpot.observe((event.latency - ttft) / (event.completion_tokens - 1))


@dataclass(frozen=True, slots=True)
class _ModelSeries:
    """A model's labelled children, looked up once instead of on every request."""

    duration: Histogram
    ttft: Histogram
    tokens_in: Counter
    tokens_out: Counter
    tpot: Histogram


@dataclass(frozen=True, slots=True)
class _TeamSeries:
    """A team's labelled children on one model."""

    tokens_in: Counter
    tokens_out: Counter
    cost: Counter

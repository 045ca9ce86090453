"""The model catalog: the public model names, their aliases, and the engine that serves each."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from corral.errors import ConfigError

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Timeouts(_Strict):
    """How long the gateway waits on an engine, in seconds."""

    connect: float = Field(5.0, gt=0, description="Opening a connection to the engine.")
    first_byte: float = Field(
        120.0, gt=0, description="From sending the request to the first byte."
    )
    idle: float = Field(60.0, gt=0, description="Between two chunks of a streamed answer.")
    total: float = Field(600.0, gt=0, description="The whole request, first byte to last.")


class Endpoint(_Strict):
    """One replica of an OpenAI-compatible engine."""

    url: str = Field(description="Base URL including the API prefix, e.g. http://10.0.0.5:8000/v1.")
    weight: float = Field(1.0, gt=0, description="Relative share of traffic for weighted routing.")

    @field_validator("url")
    @classmethod
    def _allowed_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http:// or https:// URL with a host")
        if parts.username or parts.password:
            raise ValueError(
                "must not carry credentials; put the key in api_key_env or api_key_file"
            )
        if parts.query or parts.fragment:
            raise ValueError("must not carry a query string or fragment")
        return value.rstrip("/")


class OpenAIEngine(_Strict):
    """Any OpenAI-compatible server: vLLM, Ray Serve, TGI, Ollama, OpenAI, Azure, Bedrock."""

    kind: Literal["openai"] = "openai"
    endpoints: list[Endpoint] = Field(min_length=1, description="Replicas of this engine.")
    upstream_model: str | None = Field(
        None, description="Model name the engine expects, when it differs from the public name."
    )
    api_key_env: str | None = Field(
        None, description="Environment variable holding the engine's API key (never inlined)."
    )
    api_key_file: str | None = Field(None, description="File holding the engine's API key.")

    @model_validator(mode="after")
    def _one_key_source(self) -> OpenAIEngine:
        if self.api_key_env and self.api_key_file:
            raise ValueError("set api_key_env or api_key_file, not both")
        return self


class FakeEngineConfig(_Strict):
    """Corral's scripted test engine, started in-process (for demos, tests and benchmarks)."""

    kind: Literal["fake"] = "fake"
    tokens: int = Field(16, ge=1, le=100_000, description="Tokens in each answer.")
    time_to_first_token: float = Field(0.0, ge=0, description="Seconds before the first token.")
    token_delay: float = Field(0.0, ge=0, description="Seconds between tokens.")
    embedding_dimensions: int = Field(16, ge=1, le=8192, description="Length of embeddings.")


class LocalEngineConfig(_Strict):
    """Corral's local CPU engine serving a model from disk or a hub."""

    kind: Literal["local"] = "local"
    model: str = Field(description="Hugging Face id, local directory, or .gguf file.")
    task: Literal["chat", "embeddings"] = Field("chat", description="What the model serves.")
    max_batch_size: int = Field(4, ge=1, le=64, description="Sequences generated together.")
    max_queue: int = Field(64, ge=1, description="Waiting requests before 503 with Retry-After.")
    context_length: int = Field(2048, ge=16, description="Longest prompt plus answer, in tokens.")
    backend: Literal["auto", "onnx", "transformers"] = Field(
        "auto",
        description="auto: int4 ONNX Runtime where the model converts, else transformers (any).",
    )
    threads: int = Field(0, ge=0, le=256, description="CPU threads for inference; 0: all cores.")
    max_tokens: int = Field(
        512,
        ge=1,
        description="Chat: the answer length for requests that set no max_tokens (at most what "
        "the context leaves).",
    )
    temperature: float | None = Field(
        None,
        ge=0,
        le=2,
        description="Chat: temperature for requests that set none; unset: the model's "
        "generation_config.json (greedy when it does not sample), else greedy (0).",
    )
    top_p: float | None = Field(
        None,
        gt=0,
        le=1,
        description="Chat: top_p for requests that set none; unset: the model's "
        "generation_config.json, else 1.",
    )


EngineConfig = Annotated[
    OpenAIEngine | FakeEngineConfig | LocalEngineConfig, Field(discriminator="kind")
]


class EndpointHealth(_Strict):
    """How the gateway watches a model's endpoints and takes failing ones out of rotation."""

    probe_interval: float = Field(
        10.0, ge=0, description="Seconds between active probes (GET /models); 0 turns them off."
    )
    eject_after: int = Field(
        5, ge=1, description="Connect errors or 5xx in a row that eject an endpoint."
    )
    ejection_seconds: float = Field(
        30.0, gt=0, description="First ejection's length; each further one doubles it."
    )
    max_ejection_seconds: float = Field(300.0, gt=0, description="Longest ejection.")
    max_ejected_share: float = Field(
        0.5, gt=0, le=1, description="Most of the endpoints ejected at once (one always stays)."
    )
    retry_budget: float = Field(
        0.2, ge=0, le=1, description="Retries on another endpoint, as a share of requests."
    )


class FairQueueing(_Strict):
    """Admission when a model's endpoints are saturated: weighted fair queuing across teams."""

    max_in_flight_per_endpoint: int = Field(
        ge=1, description="Requests one endpoint works on at once; more wait in the queue."
    )
    team_weights: dict[str, float] = Field(
        default_factory=dict, description="Team id → share weight (default 1)."
    )
    max_queued: int = Field(256, ge=1, description="Waiting requests before 429.")
    max_wait_seconds: float = Field(30.0, ge=0, description="Longest wait before 503.")


RoutingName = Literal["least-outstanding", "prefix-affinity", "session-affinity", "weighted-random"]


SECONDS_PER_HOUR = 3600.0


class DeploymentCost(_Strict):
    """What a self-hosted deployment costs to run, whether or not anyone sends it requests.

    Usage reports share this cost among teams by their share of the model's tokens in each
    day (``corral.admin.attribution``). Budgets cannot wait for the day to end, so admission
    and the ledger charge every token at the effective rate
    ``usd_per_hour / (tokens_per_second * 3600)``: what a token costs when each replica
    serves ``tokens_per_second`` on average.
    """

    usd_per_hour: float | None = Field(
        None, gt=0, description="What one replica costs per hour; or give instance_type."
    )
    instance_type: str | None = Field(
        None,
        description="An instance type of the planner's price table (`corral plan`, e.g. "
        "g5.xlarge): its price per hour is used instead of usd_per_hour.",
    )
    capacity: Literal["on-demand", "spot"] = Field(
        "on-demand", description="Which of the instance type's prices applies."
    )
    replicas: int = Field(1, ge=1, description="Replicas running; each costs usd_per_hour.")
    tokens_per_second: float = Field(
        gt=0,
        description="Prompt plus completion tokens one replica is expected to serve per second "
        "on average (from load tests or the planner's estimate); sets the effective rate.",
    )

    @model_validator(mode="after")
    def _one_price(self) -> DeploymentCost:
        if (self.usd_per_hour is None) == (self.instance_type is None):
            raise ValueError(
                "set usd_per_hour (what one replica costs per hour) or instance_type (priced "
                "from the planner's table), one of them"
            )
        return self

    @property
    def hourly(self) -> float:
        """One replica's price per hour (an instance type's is filled in at start-up)."""
        if self.usd_per_hour is None:
            raise ConfigError(
                f"pricing.deployment.instance_type {self.instance_type!r} has no price yet: "
                "settings must go through corral.composition.pricing.with_instance_prices"
            )
        return self.usd_per_hour

    @property
    def usd_per_1m_tokens(self) -> float:
        """The effective rate: one replica-hour's cost over the tokens it serves in an hour."""
        return self.hourly * 1_000_000 / (self.tokens_per_second * SECONDS_PER_HOUR)

    def usd_between(self, start: float, end: float) -> float:
        """What every replica together costs from ``start`` to ``end`` (epoch seconds)."""
        return self.hourly * self.replicas * max(0.0, end - start) / SECONDS_PER_HOUR


class Pricing(_Strict):
    """What a model costs: list prices per million tokens, or a self-hosted deployment's cost.

    ``input_per_1m`` and ``output_per_1m`` read as the rates budgets and the ledger charge:
    the list prices, or for a ``deployment`` its effective rate (the same for both).
    """

    model_config = ConfigDict(populate_by_name=True)

    list_input_per_1m: float = Field(
        0.0, ge=0, alias="input_per_1m", description="USD per 1M prompt tokens."
    )
    list_output_per_1m: float = Field(
        0.0, ge=0, alias="output_per_1m", description="USD per 1M completion tokens."
    )
    deployment: DeploymentCost | None = Field(
        None,
        description="A self-hosted model's running cost, instead of list prices; reports "
        "attribute it to teams by their share of tokens.",
    )

    @model_validator(mode="after")
    def _one_basis(self) -> Pricing:
        if self.deployment is not None and (self.list_input_per_1m or self.list_output_per_1m):
            raise ValueError(
                "set either input_per_1m/output_per_1m (list prices) or deployment (a "
                "self-hosted model's running cost), not both"
            )
        return self

    @property
    def input_per_1m(self) -> float:
        """USD charged per 1M prompt tokens."""
        if self.deployment is not None:
            return self.deployment.usd_per_1m_tokens
        return self.list_input_per_1m

    @property
    def output_per_1m(self) -> float:
        """USD charged per 1M completion tokens."""
        if self.deployment is not None:
            return self.deployment.usd_per_1m_tokens
        return self.list_output_per_1m

    @property
    def basis(self) -> Literal["list", "attributed"]:
        """How reports price this model: list prices, or the deployment's cost attributed."""
        return "list" if self.deployment is None else "attributed"


class ModelSpec(_Strict):
    """One public model in the catalog."""

    name: str = Field(description="The name clients send in the `model` field.")
    aliases: list[str] = Field(default_factory=list, description="Other accepted names.")
    engine: EngineConfig
    timeouts: Timeouts = Field(default_factory=Timeouts)
    pricing: Pricing = Field(default_factory=Pricing)
    context_length: int | None = Field(None, ge=1, description="Longest context, for the catalog.")
    max_tokens_default: int = Field(
        4096,
        ge=1,
        description="Assumed completion length when a request sets no max_tokens (a local "
        "engine's default: its engine.max_tokens).",
    )
    routing: RoutingName = Field(
        "least-outstanding", description="How requests spread over the endpoints."
    )
    fallbacks: list[str] = Field(
        default_factory=list,
        description="Models to use, in order, when no endpoint of this one can answer.",
    )
    health: EndpointHealth = Field(default_factory=EndpointHealth)
    fair_queueing: FairQueueing | None = Field(
        None, description="Queue across teams when saturated; unset: no per-endpoint bound."
    )
    scale_to_zero: bool = Field(
        False,
        description="The engine may have no replica (e.g. Ray Serve with min_replicas 0): hold "
        "requests while one starts (discovery.cold_start) and never probe it actively.",
    )

    @field_validator("name")
    @classmethod
    def _valid_name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError(
                "must be 1-128 characters of letters, digits and . _ : / -, starting alphanumeric"
            )
        return value

    @field_validator("aliases")
    @classmethod
    def _valid_aliases(cls, values: list[str]) -> list[str]:
        for value in values:
            cls._valid_name(value)
        return values

    @model_validator(mode="before")
    @classmethod
    def _local_answer_length(cls, data: Any) -> Any:
        # The local engine stops unbounded answers at engine.max_tokens: reserve (and bill
        # ahead) that much, not the generic 4096, unless the operator set it.
        if not isinstance(data, dict) or "max_tokens_default" in data:
            return data
        engine = data.get("engine")
        if isinstance(engine, LocalEngineConfig):
            return {**data, "max_tokens_default": engine.max_tokens}
        if isinstance(engine, dict) and engine.get("kind") == "local":
            default = LocalEngineConfig.model_fields["max_tokens"].default
            return {**data, "max_tokens_default": engine.get("max_tokens", default)}
        return data

    def upstream_name(self) -> str:
        """The model name sent to the engine."""
        if isinstance(self.engine, OpenAIEngine) and self.engine.upstream_model:
            return self.engine.upstream_model
        return self.name


class Catalog:
    """Resolves public names and aliases to model specs."""

    def __init__(self, models: Iterable[ModelSpec]) -> None:
        self._models: dict[str, ModelSpec] = {}
        self._by_name: dict[str, ModelSpec] = {}
        for model in models:
            for name in (model.name, *model.aliases):
                if name in self._by_name:
                    raise ConfigError(
                        f"models: the name {name!r} is used twice; names must be unique"
                    )
                self._by_name[name] = model
            self._models[model.name] = model
        for model in self._models.values():
            for fallback in model.fallbacks:
                if fallback not in self._by_name or self._by_name[fallback] is model:
                    raise ConfigError(
                        f"models: {model.name}.fallbacks names {fallback!r}, which is not "
                        "another model in the catalog"
                    )

    def __iter__(self) -> Iterator[ModelSpec]:
        return iter(self._models.values())

    def __len__(self) -> int:
        return len(self._models)

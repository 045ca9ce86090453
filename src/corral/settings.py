"""Typed, grouped settings read once at start-up from corral.yaml and CORRAL_* variables."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from corral.catalog import Catalog, ModelSpec
from corral.errors import ConfigError


class _Group(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ConnectionLimits(_Group):
    """Caps on unauthenticated work: a client can hold only so much memory and so many sockets."""

    max_header_bytes: int = Field(
        64 * 1024, ge=1024, description="Request line plus headers, in bytes (431 beyond)."
    )
    max_headers: int = Field(100, ge=8, description="Headers in one request (431 beyond).")
    max_url_bytes: int = Field(8 * 1024, ge=256, description="Request target length (414 beyond).")
    header_timeout: float = Field(
        10.0, gt=0, description="Seconds to send a request's line and headers (408, closed)."
    )
    body_timeout: float = Field(
        60.0, gt=0, description="Seconds to send a request's body once its headers are in."
    )
    keep_alive_timeout: int = Field(
        5, ge=1, description="Seconds an idle keep-alive connection is kept open."
    )
    max_connections: int = Field(
        2048, ge=1, description="Open connections per process; more get 503 and are closed."
    )
    max_connections_per_client: int | None = Field(
        256,
        ge=1,
        description="Open connections from one client address; more get 503. Unset behind a "
        "proxy or load balancer that connects from one address.",
    )


class ServerSettings(_Group):
    """Where and how the gateway listens."""

    host: str = Field("127.0.0.1", description="Address to bind; 0.0.0.0 to accept remote clients.")
    port: int = Field(8000, ge=0, le=65535, description="TCP port for API, admin API and portal.")
    max_body_bytes: int = Field(
        4 * 1024 * 1024, ge=1024, description="Largest request body accepted (413 beyond)."
    )
    max_in_flight: int = Field(
        1024, ge=1, description="Requests one process works on at once; more get 503."
    )
    workers: int = Field(
        1,
        ge=1,
        le=64,
        description="Gateway processes sharing the port (SO_REUSEPORT), about one per core. "
        "More than one needs limits.redis_url (shared counters) and engines outside the "
        "gateway (kind: openai).",
    )
    drain_grace: float = Field(
        5.0, ge=0, description="On SIGTERM: seconds of not-ready before refusing new requests."
    )
    drain_timeout: float = Field(
        30.0, ge=0, description="On SIGTERM: the longest wait for open requests and streams."
    )
    limits: ConnectionLimits = Field(
        default_factory=ConnectionLimits,
        description="What one connection may send and hold before anyone is authenticated.",
    )
    metrics_host: str = Field(
        "127.0.0.1",
        description="Address of the separate /metrics listener (never the public port); "
        "0.0.0.0 for an in-cluster Prometheus.",
    )
    metrics_port: int | None = Field(
        9464,
        ge=0,
        le=65535,
        description="Port of the /metrics listener; 0 picks a free one, unset serves no metrics.",
    )


class LoggingSettings(_Group):
    """What the logs look like."""

    level: Literal["debug", "info", "warning", "error"] = Field("info", description="Lowest level.")
    format: Literal["text", "json"] = Field(
        "text", description="text for people, json for machines."
    )
    access_log: bool = Field(True, description="One line per request (never bodies or keys).")


class StoreSettings(_Group):
    """Where keys, teams, usage and the audit log live."""

    database_url: str | None = Field(
        None,
        description="SQLAlchemy URL; unset means a SQLite file in data_dir. "
        "PostgreSQL: postgresql+asyncpg://user@host/db.",
    )
    timeout: float = Field(
        5.0,
        gt=0,
        le=300,
        description="Seconds the store may take to connect or to answer one statement (or "
        "SQLite to wait for its lock); a store slower than that counts as down: usage stays in "
        "the local journal and shutdown does not wait on it.",
    )
    usage_fsync: Literal["none", "batch", "always"] = Field(
        "batch",
        description="When the usage journal is forced to disk. Every setting survives a "
        "process crash; on a machine crash none loses what the OS had not written back, batch "
        "at most the last 0.5 s of records, always nothing that was answered (one disk flush "
        "per request).",
    )


class LimitValues(_Group):
    """Rate, concurrency and budget limits; unset means unlimited."""

    rpm: int | None = Field(None, ge=1, description="Requests per minute.")
    tpm: int | None = Field(None, ge=1, description="Tokens per minute (estimate + max_tokens).")
    max_concurrent: int | None = Field(None, ge=1, description="Requests in flight at once.")
    monthly_budget_usd: float | None = Field(
        None, ge=0, description="US dollars per calendar month (UTC)."
    )


class LimitSettings(_Group):
    """Defaults for keys and teams without limits of their own, and where counters live."""

    key_defaults: LimitValues = Field(default_factory=LimitValues)
    team_defaults: LimitValues = Field(default_factory=LimitValues)
    redis_url: str | None = Field(
        None,
        description="Redis for counters shared by several gateways (redis://host:6379/0); "
        "unset keeps counters in this process. If Redis is down, rate limits apply per process "
        "and budgets as budgets_on_redis_outage says.",
    )
    redis_prefix: str = Field(
        "corral", min_length=1, max_length=64, description="Prefix of Corral's keys in Redis."
    )
    redis_pool_size: int = Field(
        32,
        ge=1,
        le=10_000,
        description="Connections to Redis per gateway process; a burst beyond them waits.",
    )
    redis_pool_wait: float = Field(
        1.0,
        gt=0,
        description="Seconds a request waits for a free Redis connection before a 503 "
        "(back-pressure: a busy pool never counts as Redis being down).",
    )
    budgets_on_redis_outage: Literal["share", "refuse", "open"] = Field(
        "share",
        description="Budgets while Redis is down (rate limits then apply per process): share: "
        "each process admits only its share of what was left, then 503; refuse: 503 for "
        "every request with a budget; open: each process counts budgets alone (availability "
        "over the budget: may overspend). See docs/money.md.",
    )
    gateway_processes: int | None = Field(
        None,
        ge=1,
        description="Gateway processes sharing these counters, all replicas together (a "
        "budget's share while Redis is down is 1/this); unset: server.workers.",
    )
    refresh_interval: float = Field(
        1.0,
        gt=0,
        description="Seconds between looks for changed limits of keys and teams (one indexed "
        "query that reads only what changed since the last look).",
    )


ROLES = ("platform-admin", "team-admin", "developer")


class ClaimMapping(_Group):
    """How ID-token claims become a Corral team and role (claims win over the store)."""

    email_claim: str = Field("email", description="Claim holding the e-mail (the user's key).")
    name_claim: str = Field("name", description="Claim holding the display name.")
    team_claim: str = Field(
        "groups", description="Claim (a string or a list) naming the user's team."
    )
    team_prefix: str = Field(
        "", description="Only values with this prefix name a team; the prefix is cut off."
    )
    default_team: str | None = Field(
        None, description="Team for users whose claims name none; unset: refuse them."
    )
    role_claim: str = Field("groups", description="Claim (a string or a list) giving the role.")
    roles: dict[str, str] = Field(
        default_factory=dict,
        description="Claim value → role (platform-admin, team-admin or developer); the highest "
        "matching role wins, no match means developer.",
        examples=[{"corral-admins": "platform-admin", "ml-leads": "team-admin"}],
    )
    allowed_domains: list[str] = Field(
        default_factory=list, description="E-mail domains allowed to sign in; empty: any."
    )
    create_teams: bool = Field(
        False, description="Create a team named by the claims when it does not exist yet."
    )

    @field_validator("roles")
    @classmethod
    def _known_roles(cls, value: dict[str, str]) -> dict[str, str]:
        for claim, role in value.items():
            if role not in ROLES:
                raise ValueError(f"{claim!r} maps to {role!r}; roles are {', '.join(ROLES)}")
        return value


class OidcSettings(_Group):
    """An OpenID Connect provider (authorization code flow with PKCE)."""

    issuer: str = Field(
        description="Issuer URL; its /.well-known/openid-configuration is read at sign-in.",
        examples=["https://login.example.com/realms/corp"],
    )
    client_id: str = Field(description="This portal's client id at the provider.")
    client_secret: SecretStr | None = Field(
        None, description="Client secret (confidential clients); unset for public clients."
    )
    scopes: list[str] = Field(
        default_factory=lambda: ["openid", "email", "profile"], description="Scopes to ask for."
    )
    display_name: str = Field("single sign-on", description="Shown on the sign-in button.")
    claims: ClaimMapping = Field(default_factory=ClaimMapping)

    @field_validator("issuer")
    @classmethod
    def _http_issuer(cls, value: str) -> str:
        if not value.startswith(("https://", "http://")):
            raise ValueError("must be an https:// URL (http:// only for local testing)")
        return value.rstrip("/")


class PortalSettings(_Group):
    """The developer portal at /ui."""

    enabled: bool = Field(True, description="Serve the portal at /ui.")
    public_url: str | None = Field(
        None,
        description="Base URL developers reach Corral at (for snippets and the SSO redirect); "
        "unset: taken from each request.",
        examples=["https://ai.example.com"],
    )
    oidc: OidcSettings | None = Field(None, description="Single sign-on; unset: keys only.")
    key_sign_in: bool = Field(True, description="Allow signing in by pasting an API key.")
    session_hours: float = Field(
        12.0, gt=0, le=24 * 30, description="How long a sign-in lasts (its key expires then)."
    )
    secure_cookies: bool | None = Field(
        None, description="Mark cookies Secure; unset: when the request came over https."
    )

    @field_validator("public_url")
    @classmethod
    def _bare_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("https://", "http://")):
            raise ValueError("must be an http:// or https:// URL")
        return None if value is None else value.rstrip("/")


class ColdStartSettings(_Group):
    """How long and how many requests the gateway holds for a model scaled to zero."""

    max_wait_s: float = Field(
        120.0, gt=0, description="Longest a request waits for the first replica before a 503."
    )
    max_waiting: int = Field(
        256, ge=1, description="Requests held per model at once; more get a 503 at once."
    )
    warm_for_s: float = Field(
        5.0, ge=0, description="After a model was found ready, requests pass unchecked this long."
    )
    retry_after_s: float = Field(10.0, ge=0, description="Retry-After on the 503.")


class RayDiscovery(_Group):
    """Learn the models Corral deployed as Ray Serve applications (needs the ray extra)."""

    address: str = Field("auto", description="Ray cluster address (auto, or ray://host:10001).")
    serve_url: str = Field(
        "http://127.0.0.1:8000",
        description="Where this gateway reaches Serve's HTTP proxy; apps are under their prefix.",
    )

    @field_validator("serve_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value.rstrip("/")


class KubernetesDiscovery(_Group):
    """Learn the models `corral deploy` applied to a cluster (needs the k8s extra)."""

    context: str | None = Field(
        None,
        description="kubeconfig context; unset: the pod's service account, else the current one.",
    )
    namespaces: list[str] = Field(
        default_factory=lambda: ["corral-models"],
        min_length=1,
        description="Namespaces to read Corral's model Services from.",
    )


class DiscoverySettings(_Group):
    """Models learned at runtime, routed next to the ones in `models` (which always win)."""

    interval: float = Field(10.0, gt=0, description="Seconds between reads of the sources.")
    ray: RayDiscovery | None = Field(None, description="Ray Serve applications; unset: off.")
    kubernetes: KubernetesDiscovery | None = Field(
        None, description="Kubernetes Services rendered by `corral deploy`; unset: off."
    )
    cold_start: ColdStartSettings = Field(default_factory=ColdStartSettings)


class CorralSettings(BaseSettings):
    """All of Corral's settings. Environment: CORRAL_<GROUP>__<FIELD>, e.g. CORRAL_SERVER__PORT."""

    model_config = SettingsConfigDict(
        env_prefix="CORRAL_", env_nested_delimiter="__", extra="forbid", frozen=True
    )

    data_dir: Path = Field(
        Path(".corral"), description="Directory for the SQLite store, secrets and model caches."
    )
    server: ServerSettings = Field(default_factory=ServerSettings)
    logging: LoggingSettings = Field(default_factory=LoggingSettings)
    store: StoreSettings = Field(default_factory=StoreSettings)
    limits: LimitSettings = Field(default_factory=LimitSettings)
    portal: PortalSettings = Field(default_factory=PortalSettings)
    models: list[ModelSpec] = Field(default_factory=list, description="The model catalog.")
    discovery: DiscoverySettings = Field(default_factory=DiscoverySettings)

    @model_validator(mode="after")
    def _catalog_is_consistent(self) -> CorralSettings:
        try:
            Catalog(self.models)
        except ConfigError as exc:
            raise ValueError(exc.message.removeprefix("models: ")) from exc
        return self

    @model_validator(mode="after")
    def _workers_share_what_they_must(self) -> CorralSettings:
        problem = workers_problem(self)
        if problem is not None:
            raise ValueError(problem)
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Environment overrides the file; the file's values arrive as init arguments.
        return (env_settings, init_settings)


def workers_problem(settings: CorralSettings) -> str | None:
    """Why ``settings`` cannot run several gateway workers, or None when they can (or when
    there is one)."""
    if settings.server.workers == 1:
        return None
    if not settings.limits.redis_url:
        return (
            "server.workers > 1 needs limits.redis_url: limits and budgets must be counted in "
            "one place for all workers (otherwise each would allow the whole limit)"
        )
    for spec in settings.models:
        if spec.engine.kind != "openai":
            return (
                f"server.workers > 1 runs the gateway only; model {spec.name!r} has an "
                f"in-process engine (kind: {spec.engine.kind}). Serve it apart (e.g. "
                "`corral engine local`) and point a kind: openai model at it, or use "
                "server.workers: 1"
            )
    return None


def read_yaml(path: Path) -> dict[str, Any]:
    """The YAML mapping in ``path``; ConfigError when it is missing or not a mapping."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: no such file; pass --config PATH or create it") from exc
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read it ({exc.strerror})") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of setting names to values")
    return data


def load_settings(path: Path | None) -> CorralSettings:
    """Settings from ``path`` (if any) overridden by CORRAL_* variables; ConfigError if invalid."""
    data = read_yaml(path) if path is not None else {}
    try:
        settings = CorralSettings(**data)
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(str(path or "settings"), exc)) from exc
    if path is not None and not settings.data_dir.is_absolute():
        # A relative data_dir in a file means relative to that file, not to where Corral starts.
        settings = settings.model_copy(update={"data_dir": path.parent / settings.data_dir})
    return settings


def describe_validation_error(where: str, exc: ValidationError) -> str:
    """One line per problem: the dotted field path, what is wrong, and what was given."""
    lines = [f"{where}: {exc.error_count()} invalid setting(s):"]
    for error in exc.errors(include_url=False):
        field = ".".join(str(part) for part in error["loc"]) or "(top level)"
        message = error["msg"]
        if error["type"] == "extra_forbidden":
            message = "unknown setting; check its spelling against `corral config schema`"
        elif error["type"] == "literal_error":
            message = f"{message} (allowed: {error.get('ctx', {}).get('expected', '?')})"
        lines.append(f"  - {field}: {message}")
    return "\n".join(lines)

"""`corral up`: settings → a running platform on a port, with progress and a first-run welcome."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvloop
from prometheus_client import CollectorRegistry
from rich.console import Console

from corral.catalog import LocalEngineConfig, ModelSpec
from corral.clock import SystemClock
from corral.composition.platform import Platform, running_platform
from corral.composition.portal import portal_mount
from corral.composition.pricing import with_instance_prices
from corral.composition.quotas import running_quotas, settle_owned_by
from corral.composition.serving import metrics_socket, serve
from corral.composition.tenancy import open_tenancy
from corral.composition.workers import listening_socket, run_workers
from corral.engines.fake import FakeEngine, FakeScript
from corral.errors import ConfigError
from corral.gateway.journal import new_owner
from corral.gateway.logs import configure_logging
from corral.settings import CorralSettings, ServerSettings, workers_problem
from corral.store.keysync import DEFAULT_INTERVAL as KEY_SYNC_INTERVAL


def run_up(
    settings: CorralSettings,
    console: Console,
    *,
    model: str | None = None,
    host: str | None = None,
    port: int | None = None,
) -> None:
    """Serve Corral in the foreground until Ctrl-C or SIGTERM (in ``server.workers``
    processes when there are more than one)."""
    settings = with_instance_prices(_with_overrides(settings, model=model, host=host, port=port))
    configure_logging(settings.logging.level, settings.logging.format)
    if settings.server.workers == 1:
        uvloop.run(_serve(settings, console))
        return
    problem = workers_problem(settings)  # again: --model may have added a local engine
    if problem is not None:
        raise ConfigError(problem)
    run_workers(
        settings,
        console,
        prepare=lambda s: uvloop.run(_prepare(s, console)),
        welcome=lambda s, _: _welcome(
            console, s, [m.name for m in s.models], uvloop.run(_first_key_once_serving(s, console))
        ),
        serve_worker=serve_worker,
    )


def serve_worker(settings: CorralSettings, index: int) -> None:
    """One of several gateway processes (runs in a worker process; see composition.workers)."""
    configure_logging(settings.logging.level, settings.logging.format)
    uvloop.run(_serve(settings, Console(stderr=True, quiet=True), worker=index))


async def _prepare(settings: CorralSettings, console: Console) -> str | None:
    """Migrate the store once, before the workers start (the first key waits for them)."""
    async with open_tenancy(settings, SystemClock(), console, first_key=False):
        return None


async def _first_key_once_serving(settings: CorralSettings, console: Console) -> str | None:
    """Workers: the first admin key, made once they all answer (a failed start keeps none),
    and shown only after their key sync has loaded it."""
    clock = SystemClock()
    async with open_tenancy(settings, clock, console, first_key=False) as tenancy:
        await tenancy.create_first_key(clock.now())
    if tenancy.bootstrap_key is not None:
        await asyncio.sleep(KEY_SYNC_INTERVAL + 0.5)
    return tenancy.bootstrap_key


def _with_overrides(
    settings: CorralSettings, *, model: str | None, host: str | None, port: int | None
) -> CorralSettings:
    server: ServerSettings = settings.server
    if host is not None or port is not None:
        server = server.model_copy(
            update={"host": host or server.host, "port": server.port if port is None else port}
        )
    models = settings.models
    if model is not None:
        name = model.rstrip("/").rsplit("/", 1)[-1].removesuffix(".gguf").lower()
        models = [ModelSpec(name=name, engine=LocalEngineConfig(model=model))]
    return settings.model_copy(update={"server": server, "models": models})


async def _serve(settings: CorralSettings, console: Console, *, worker: int | None = None) -> None:
    host, port = settings.server.host, settings.server.port
    # The port first: a busy one is a clear error before the store or any engine is touched.
    fix = (
        f"start Corral on a free port: corral up --port {port + 1} (or server.port in corral.yaml)"
    )
    sock = listening_socket(host, port, shared=worker is not None, fix=fix)
    try:
        await _serve_on(settings, console, sock, worker)
    finally:
        sock.close()


async def _serve_on(
    settings: CorralSettings, console: Console, sock: socket.socket, worker: int | None
) -> None:
    clock = SystemClock()
    registry = CollectorRegistry()
    owner = new_owner()  # names this process's usage journal and reservations
    async with (
        # Workers: the parent made the first key before starting them (see _prepare).
        open_tenancy(settings, clock, console, first_key=False) as tenancy,
        running_quotas(
            settings.limits,
            tenancy.usage,
            clock,
            registry,
            tenancy.limits_reload,
            processes=settings.limits.gateway_processes or settings.server.workers,
            owner=owner,
            snapshot=tenancy.snapshot,
        ) as quotas,
        portal_mount(settings, tenancy, clock),
    ):

        async def owner_gone(dead: str) -> None:
            await settle_owned_by(quotas.counters, tenancy.usage, dead, clock.now())

        @asynccontextmanager
        async def factory() -> AsyncIterator[Platform]:
            async with running_platform(
                settings,
                keys=tenancy.keys,
                clock=clock,
                mounts=tenancy.mounts,
                usage_sink=tenancy.usage,
                quotas=quotas,
                registry=registry,
                on_key_use=tenancy.key_sync.touch,
                spool="spool",  # one directory for every worker: survivors adopt the dead's
                owner=owner,
                owner_gone=owner_gone,
                degraded=tenancy.degraded,
                progress=lambda line: console.print(f"[dim]{line}[/]"),
            ) as platform:
                tenancy.learned_models = platform.routes.learned
                if worker is None:  # engines up, port held: only now is a first key kept
                    await tenancy.create_first_key(clock.now())
                yield platform

        def ready(platform: Platform) -> None:
            if worker is None:  # workers: the parent welcomes once all of them listen
                _welcome(console, settings, platform.routes.names(), tenancy.bootstrap_key)

        server = settings.server
        await serve(
            factory,
            settings.server.host,
            sock.getsockname()[1],
            ready,
            sockets=[sock],
            metrics_sock=metrics_socket(
                server.metrics_host, server.metrics_port, shared=worker is not None
            ),
            drain_grace=settings.server.drain_grace,
            drain_timeout=settings.server.drain_timeout,
        )


def _welcome(
    console: Console, settings: CorralSettings, models: list[str], bootstrap_key: str | None
) -> None:
    host = settings.server.host
    shown_host = "127.0.0.1" if host in ("0.0.0.0", "::") else host  # noqa: S104  (a display choice)
    url = f"http://{shown_host}:{settings.server.port}"
    first = next(
        (
            spec.name
            for spec in settings.models
            if not (isinstance(spec.engine, LocalEngineConfig) and spec.engine.task != "chat")
        ),
        "MODEL",
    )
    # Soft wrap: a key or command broken across lines would not survive copy and paste.
    console.print(welcome_text(url, models, first, bootstrap_key), soft_wrap=True, highlight=False)


def welcome_text(url: str, models: list[str], chat_model: str, bootstrap_key: str | None) -> str:
    """What `corral up` prints once serving: where, which models, the first key (once) and
    snippets that work when pasted: the key itself, or $CORRAL_API_KEY read from the shell."""
    lines = [f"[bold]Corral is up[/] at {url}  (API: {url}/v1, portal: {url}/ui)"]
    lines.append(f"Models: {', '.join(models) or '(none configured)'}")
    if bootstrap_key:
        lines.append(
            f"\n[bold yellow]Admin API key (shown once, stored hashed):[/] {bootstrap_key}"
        )
    else:
        lines.append(
            "\nUse your API key (export CORRAL_API_KEY=ck-...); a lost admin key is replaced "
            "with `corral admin key --reset` on this machine."
        )
    key = bootstrap_key or "$CORRAL_API_KEY"  # double quotes below: the shell expands it
    body = f'{{"model": "{chat_model}", "messages": [{{"role": "user", "content": "Hello!"}}]}}'
    lines.append(
        f'\n[bold]curl[/]\n  curl {url}/v1/chat/completions -H "Authorization: Bearer {key}" '
        f"-H 'Content-Type: application/json' -d '{body}'"
    )
    python_key = f'"{bootstrap_key}"' if bootstrap_key else 'os.environ["CORRAL_API_KEY"]'
    lines.append(
        "\n[bold]Python[/]\n"
        + ("" if bootstrap_key else "  import os\n")
        + "  from openai import OpenAI\n"
        f'  client = OpenAI(base_url="{url}/v1", api_key={python_key})\n'
        f'  print(client.chat.completions.create(model="{chat_model}", '
        'messages=[{"role": "user", "content": "Hello!"}]).choices[0].message.content)'
    )
    return "\n".join(lines)


def run_fake_engine(
    *, port: int, tokens: int, ttft: float, token_delay: float, chunk_per_event: bool = False
) -> None:
    """Serve a FakeEngine on loopback until interrupted."""

    async def main() -> None:
        engine = FakeEngine(
            FakeScript(
                tokens=tokens,
                time_to_first_token=ttft,
                token_delay=token_delay,
                chunk_per_event=chunk_per_event,
            )
        )
        await engine.start(port=port)
        print(f"FakeEngine listening at {engine.base_url}", flush=True)
        try:
            await asyncio.Event().wait()
        finally:
            await engine.stop()

    uvloop.run(main())

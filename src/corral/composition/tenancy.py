"""Opens the tenancy side of a Corral process: store, migrations, secret, first key, key sync."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from rich.console import Console
from starlette.types import ASGIApp

from corral.admin import PREFIX
from corral.admin.app import build_admin_app
from corral.clock import Clock
from corral.principals import KeyDirectory
from corral.settings import CorralSettings
from corral.store.bootstrap import bootstrap_admin_key
from corral.store.engine import database_url, safe_url
from corral.store.keysync import KeySync
from corral.store.migrate import upgrade
from corral.store.port import Store
from corral.store.secret import check_server_secret, load_server_secret
from corral.store.sql import SqlStore
from corral.store.usage import SqlUsage


@dataclass
class Tenancy:
    """The store, the gateway's key directory and what the first start created."""

    store: Store
    keys: KeyDirectory
    key_sync: KeySync
    usage: SqlUsage
    secret: bytes = field(repr=False)
    bootstrap_key: str | None = None
    mounts: dict[str, ASGIApp] = field(default_factory=dict)
    learned_models: Callable[[], Iterable[str]] = lambda: ()
    """Models the gateway learned after start (set once it runs): keys may be limited to them."""


@asynccontextmanager
async def open_tenancy(
    settings: CorralSettings, clock: Clock, console: Console
) -> AsyncIterator[Tenancy]:
    """Migrate and open the store, load keys, and keep them fresh until the block ends."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    url = database_url(settings)
    with console.status(f"Preparing the store at {safe_url(url)} …"):
        await upgrade(url)
    timeout = settings.store.timeout
    store = SqlStore(url, timeout)
    usage = SqlUsage(url, timeout=timeout)
    try:
        secret = load_server_secret(settings.data_dir)
        await check_server_secret(store, secret)
        first = await bootstrap_admin_key(store, secret, clock.now())
        keys = KeyDirectory(secret)
        key_sync = KeySync(store, keys, clock, timeout=timeout)
        await key_sync.start()
        tenancy = Tenancy(store, keys, key_sync, usage, secret, first.secret if first else None)
        names = {name for spec in settings.models for name in (spec.name, *spec.aliases)}
        tenancy.mounts[PREFIX] = build_admin_app(
            store=store,
            keys=key_sync,
            clock=clock,
            known_models=lambda: names | set(tenancy.learned_models()),
            usage_ledger=usage,
            deployment_costs={
                spec.name: spec.pricing.deployment
                for spec in settings.models
                if spec.pricing.deployment is not None
            },
        )
        try:
            yield tenancy
        finally:
            await key_sync.stop()
    finally:
        # Bounded: a stalled database must not hold the shutdown (connections are dropped).
        for closing in (usage.close, store.close):
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await closing()

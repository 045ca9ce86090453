"""Opens the tenancy side of a Corral process: store, migrations, secret, first key, key sync."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from rich.console import Console
from starlette.types import ASGIApp

from corral.admin import PREFIX
from corral.admin.app import build_admin_app
from corral.clock import Clock
from corral.composition.quotas import LimitReload
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
    limits_reload: LimitReload = field(default_factory=LimitReload)
    """Hand it to running_quotas: the admin API's limit changes then apply here at once."""

    async def create_first_key(self, now: float) -> None:
        """On the store's first start, the platform-admin key (kept in ``bootstrap_key`` to
        print once). Called once the server can serve, so a failed start loses no key."""
        first = await bootstrap_admin_key(self.store, self.secret, now)
        if first is not None:
            self.bootstrap_key = first.secret
            await self.key_sync.refresh()


@asynccontextmanager
async def open_tenancy(
    settings: CorralSettings, clock: Clock, console: Console, *, first_key: bool = True
) -> AsyncIterator[Tenancy]:
    """Migrate and open the store, load keys, and keep them fresh until the block ends.
    ``first_key=False`` leaves the first-start admin key to ``Tenancy.create_first_key``."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    url = database_url(settings)
    with console.status(f"Preparing the store at {safe_url(url)} …"):
        await upgrade(url)
    store = SqlStore(url)
    usage = SqlUsage(url)
    try:
        secret = load_server_secret(settings.data_dir)
        await check_server_secret(store, secret)
        keys = KeyDirectory(secret)
        key_sync = KeySync(store, keys, clock)
        await key_sync.start()
        tenancy = Tenancy(store, keys, key_sync, usage, secret)
        if first_key:
            await tenancy.create_first_key(clock.now())
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
            limits_changed=tenancy.limits_reload,
        )
        try:
            yield tenancy
        finally:
            await key_sync.stop()
    finally:
        await usage.close()
        await store.close()

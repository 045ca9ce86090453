"""Opens the tenancy side of a Corral process: store, migrations, secret, first key, key sync."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from rich.console import Console
from starlette.types import ASGIApp

from corral.admin import PREFIX
from corral.admin.app import build_admin_app
from corral.clock import Clock
from corral.composition.quotas import LimitReload
from corral.errors import TemporaryError
from corral.principals import KeyDirectory
from corral.settings import CorralSettings
from corral.store.bootstrap import bootstrap_admin_key
from corral.store.engine import database_url, safe_url
from corral.store.keysync import KeySync
from corral.store.migrate import upgrade
from corral.store.port import Store
from corral.store.secret import check_server_secret, load_server_secret
from corral.store.snapshot import SNAPSHOT_DIR, StoreSnapshot
from corral.store.sql import SqlStore
from corral.store.usage import SqlUsage

log = logging.getLogger("corral.tenancy")


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
    snapshot: StoreSnapshot | None = None
    """Keys and limits as last read, for a start while the store is down."""

    async def create_first_key(self, now: float) -> None:
        """On the store's first start, the platform-admin key (kept in ``bootstrap_key`` to
        print once). Called once the server can serve, so a failed start loses no key. A start
        from the snapshot has served before: it has no first key to make."""
        if self.key_sync.from_snapshot:
            return
        first = await bootstrap_admin_key(self.store, self.secret, now)
        if first is not None:
            self.bootstrap_key = first.secret
            await self.key_sync.refresh()

    def degraded(self) -> str | None:
        """Why this process serves degraded (for /readyz), or None."""
        if self.key_sync.from_snapshot:
            return "the store is unreachable: keys and limits come from the local snapshot"
        return None


@asynccontextmanager
async def open_tenancy(
    settings: CorralSettings, clock: Clock, console: Console, *, first_key: bool = True
) -> AsyncIterator[Tenancy]:
    """Migrate and open the store, load keys, and keep them fresh until the block ends.
    ``first_key=False`` leaves the first-start admin key to ``Tenancy.create_first_key``. A store
    that is down at start is tolerated when a snapshot from an earlier start exists: the keys
    come from it, and the process says it runs degraded until the store answers."""
    settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)  # keys, usage, secret
    url = database_url(settings)
    timeout = settings.store.timeout
    store = SqlStore(url, timeout)
    usage = SqlUsage(url, timeout=timeout)
    snapshot = StoreSnapshot(settings.data_dir / SNAPSHOT_DIR)
    try:
        secret = load_server_secret(settings.data_dir)
        keys = KeyDirectory(secret)
        key_sync = KeySync(store, keys, clock, timeout=timeout, snapshot=snapshot)
        try:
            with console.status(f"Preparing the store at {safe_url(url)} …"):
                await upgrade(url)
            await check_server_secret(store, secret)
            await key_sync.start()
        except TemporaryError as exc:
            if not key_sync.start_from_snapshot():
                raise
            log.warning(
                "DEGRADED: %s; serving the keys and limits of the local snapshot, usage kept in "
                "the journal, until the store answers",
                exc.message,
            )
        tenancy = Tenancy(store, keys, key_sync, usage, secret, snapshot=snapshot)
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
        # Bounded: a stalled database must not hold the shutdown (connections are dropped).
        for closing in (usage.close, store.close):
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await closing()

"""KeySync: keeps a gateway's KeyDirectory in step with the store, and last-used times batched."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from corral.clock import Clock
from corral.errors import TemporaryError
from corral.principals import KeyDirectory, Principal
from corral.store.port import Store
from corral.store.snapshot import StoreSnapshot

log = logging.getLogger(__name__)

DEFAULT_INTERVAL = 1.0
"""Seconds between looks at the change log: a key revoked anywhere stops working everywhere
within about this long (a look that finds nothing is one indexed query)."""
DEFAULT_TIMEOUT = 5.0
"""Seconds one refresh or flush may take before the store counts as down."""


class KeySync:
    """Loads every active key (hash → principal) into a KeyDirectory once, then applies changes.

    Each refresh reads the store's change log after the last version applied and reloads only
    the keys those changes touch (revoked, rotated, created, or whose owner or team changed);
    expired keys stop at their expiry in the directory itself. Nothing is reloaded in full
    unless the log no longer reaches back to that version. The gateway calls ``touch`` per
    request (a dict write); last-used times reach the store in one batch per interval, never
    on the request path. When the store is unreachable the directory keeps its last contents
    and a warning is logged.
    """

    def __init__(
        self,
        store: Store,
        directory: KeyDirectory,
        clock: Clock,
        *,
        interval: float = DEFAULT_INTERVAL,
        timeout: float = DEFAULT_TIMEOUT,
        snapshot: StoreSnapshot | None = None,
    ) -> None:
        self.directory = directory
        self._store = store
        self._clock = clock
        self._interval = interval
        self._timeout = timeout
        self._snapshot = snapshot
        self.from_snapshot = False
        """True while the keys come from the local snapshot (the store was down at start)."""
        self._used: dict[str, float] = {}
        self._version: int | None = None
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None

    def lookup(self, key: str, now: float) -> Principal | None:
        """The principal for ``key`` from the in-memory directory (no database)."""
        return self.directory.lookup(key, now)

    def hash(self, key: str) -> str:
        """The keyed hash of ``key`` under the server secret (for storing a new key)."""
        return self.directory.hash(key)

    def touch(self, key_id: str) -> None:
        """Note that a key was used now; written to the store with the next batch."""
        self._used[key_id] = self._clock.now()

    @property
    def version(self) -> int | None:
        """The newest change applied (None before the first load)."""
        return self._version

    async def refresh(self) -> None:
        """Apply what changed in the store since the last refresh (the admin API calls this
        after a change, so it applies in this process at once)."""
        # Serialised: two refreshes must not apply the same versions, or older over newer.
        async with self._lock, self._bounded():
            changed = await self._catch_up()
        if changed and self._snapshot is not None:
            self._snapshot.save_keys(self.directory.entries())
        if self.from_snapshot:
            self.from_snapshot = False
            log.warning("key sync: the store is back; keys are read from it again")

    async def _catch_up(self) -> bool:
        """Apply the change log since the last version (or load every key the first time, or
        when the log no longer reaches back that far); True when the directory changed."""
        if self._version is None:
            await self._reload()
            return True
        changed = False
        while True:
            batch = await self._store.key_changes(self._version, self._clock.now())
            if batch is None:
                log.warning("key sync: change log passed version %d; reloading", self._version)
                await self._reload()
                return True
            if batch.version == self._version:
                return changed
            self.directory.apply(batch.active, batch.gone)
            self._version = batch.version
            changed = True

    async def _reload(self) -> None:
        # The version first: every change after it is replayed, so none falls between the two.
        version = await self._store.change_version()
        self.directory.replace(await self._store.active_keys(self._clock.now()))
        self._version = version

    async def flush(self) -> None:
        """Write the pending last-used times to the store (kept for the next try on failure)."""
        pending, self._used = self._used, {}
        try:
            async with self._bounded():
                await self._store.record_key_use(pending)
        except TemporaryError:
            for key_id, at in pending.items():
                self._used[key_id] = max(at, self._used.get(key_id, at))
            raise

    async def start(self) -> None:
        """Load the directory once (raising when the store is down), then keep it fresh."""
        await self.refresh()
        self._start_loop()

    def start_from_snapshot(self) -> bool:
        """The store is down: load the keys of the last snapshot and keep trying the store;
        False when there is no snapshot (this gateway never served)."""
        keys = self._snapshot.keys() if self._snapshot is not None else None
        if keys is None:
            return False
        self.directory.replace(keys)
        self.from_snapshot = True
        self._start_loop()
        return True

    def _start_loop(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="corral-key-sync")

    async def stop(self) -> None:
        """Stop refreshing and write the last batch of last-used times."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        with contextlib.suppress(TemporaryError):
            await self.flush()

    @contextlib.asynccontextmanager
    async def _bounded(self) -> AsyncIterator[None]:
        """A store call that takes longer than ``timeout`` counts as the store being down."""
        try:
            async with asyncio.timeout(self._timeout):
                yield
        except TimeoutError as exc:
            raise TemporaryError(
                f"the store did not answer within {self._timeout:g} s", delay=1.0
            ) from exc

    async def tick(self) -> None:
        """One round of the loop: refresh the directory and flush last-used times."""
        try:
            await self.refresh()
            await self.flush()
        except TemporaryError as exc:
            log.warning("key sync: %s; serving with the keys loaded before", exc.message)

    async def _run(self) -> None:
        while True:
            await self._clock.sleep(self._interval)
            try:
                await self.tick()
            except Exception:
                # The loop must outlive any one bad round, or revocations would stop arriving.
                log.exception("key sync: refresh failed; retrying in %.1f s", self._interval)

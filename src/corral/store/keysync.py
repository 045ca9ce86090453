"""KeySync: keeps a gateway's KeyDirectory in step with the store, and last-used times batched."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from corral.clock import Clock
from corral.errors import TemporaryError
from corral.principals import KeyDirectory, Principal
from corral.store.port import Store

log = logging.getLogger(__name__)

DEFAULT_INTERVAL = 1.0
"""Seconds between looks at the change log: a key revoked anywhere stops working everywhere
within about this long (a look that finds nothing is one indexed query)."""


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
    ) -> None:
        self.directory = directory
        self._store = store
        self._clock = clock
        self._interval = interval
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
        async with self._lock:
            if self._version is None:
                await self._reload()
                return
            while True:
                batch = await self._store.key_changes(self._version, self._clock.now())
                if batch is None:
                    log.warning("key sync: change log passed version %d; reloading", self._version)
                    await self._reload()
                    return
                if batch.version == self._version:
                    return
                self.directory.apply(batch.active, batch.gone)
                self._version = batch.version

    async def _reload(self) -> None:
        # The version first: every change after it is replayed, so none falls between the two.
        version = await self._store.change_version()
        self.directory.replace(await self._store.active_keys(self._clock.now()))
        self._version = version

    async def flush(self) -> None:
        """Write the pending last-used times to the store (kept for the next try on failure)."""
        pending, self._used = self._used, {}
        try:
            await self._store.record_key_use(pending)
        except TemporaryError:
            for key_id, at in pending.items():
                self._used[key_id] = max(at, self._used.get(key_id, at))
            raise

    async def start(self) -> None:
        """Load the directory once (raising when the store is down), then keep it fresh."""
        await self.refresh()
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

"""Builds the admission counters and keeps every key's and team's limits fresh in memory."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry

from corral.clock import Clock
from corral.counters.failopen import FailOpenCounters
from corral.counters.limits import MICROS_PER_USD, Limits
from corral.counters.local import LocalCounters
from corral.counters.metrics import CountersMetrics
from corral.counters.port import Counters, Reservation
from corral.errors import TemporaryError
from corral.gateway.ledger import UsageSink
from corral.gateway.policies.lost_requests import lost_request_record
from corral.gateway.policies.quotas import month_window
from corral.gateway.quotas import LimitBook, Quotas
from corral.settings import LimitSettings, LimitValues
from corral.store.snapshot import StoreSnapshot
from corral.store.usage import LimitSetting, UsageLedger

if TYPE_CHECKING:
    from corral.counters.redis import RedisCounters

log = logging.getLogger("corral.quotas")


def _limits(values: LimitValues) -> Limits:
    return Limits(**values.model_dump())


def _stored(row: LimitSetting) -> Limits:
    return Limits(
        rpm=row.rpm,
        tpm=row.tpm,
        max_concurrent=row.max_concurrent,
        monthly_budget_usd=row.monthly_budget_usd,
    )


async def refresh_limits(
    book: LimitBook, usage: UsageLedger, snapshot: StoreSnapshot | None = None
) -> int:
    """Load every key's and team's limits from the store into ``book`` (and ``snapshot``); the
    change version they are as of (apply later changes with ``apply_limit_changes``)."""
    version = await usage.limits_version()  # first: changes after it are replayed
    rows = await usage.all_limits()
    if snapshot is not None:
        snapshot.save_limits(rows)
    _fill(book, rows)
    return version


def _fill(book: LimitBook, rows: list[LimitSetting]) -> None:
    keys: dict[str, Limits] = {}
    teams: dict[str, Limits] = {}
    for row in rows:
        (keys if row.scope == "key" else teams)[row.scope_id] = _stored(row)
    book.replace(keys, teams)


async def apply_limit_changes(book: LimitBook, usage: UsageLedger, version: int) -> int:
    """Apply the limits changed after ``version`` to ``book`` (all of them, when the change
    log no longer reaches back that far); the version now applied."""
    while True:
        batch = await usage.limit_changes(version)
        if batch is None:
            log.warning("limits: change log passed version %d; reloading", version)
            return await refresh_limits(book, usage)
        if batch.version == version:
            return version
        changed: dict[str, dict[str, Limits | None]] = {"key": {}, "team": {}}
        for (scope, holder), row in batch.limits.items():
            changed[scope][holder] = None if row is None else _stored(row)
        book.apply(changed["key"], changed["team"])
        version = batch.version


class LimitReload:
    """Keeps a running process's limits in step with the store by applying the changes after
    the version it last applied. The admin API calls it after a change, so the process that
    took the change applies it at once; the refresh loop calls it every refresh_interval."""

    def __init__(self) -> None:
        self._book: LimitBook | None = None
        self._usage: UsageLedger | None = None
        self._version: int | None = None
        self._snapshot: StoreSnapshot | None = None
        self._lock = asyncio.Lock()

    def attach(
        self,
        book: LimitBook,
        usage: UsageLedger,
        version: int | None,
        snapshot: StoreSnapshot | None = None,
    ) -> None:
        """Keep ``book`` (loaded as of ``version``; None: not from the store) in step with
        ``usage`` from now on, and ``snapshot`` with it."""
        self._book, self._usage, self._version = book, usage, version
        self._snapshot = snapshot

    async def __call__(self) -> None:
        book, usage = self._book, self._usage
        if book is None or usage is None:
            return
        # Serialised: the loop and the admin API must not apply the same versions twice over.
        async with self._lock:
            if self._version is None:
                self._version = await refresh_limits(book, usage, self._snapshot)
                return
            version = await apply_limit_changes(book, usage, self._version)
            if version != self._version and self._snapshot is not None:
                # Limits change rarely: the snapshot is rewritten whole when they do.
                self._snapshot.save_limits(await usage.all_limits())
            self._version = version


RECONCILE_INTERVAL = 30.0
"""Seconds between settling reservations a crashed gateway left and re-seeding month spend."""


@asynccontextmanager
async def running_quotas(
    settings: LimitSettings,
    usage: UsageLedger,
    clock: Clock,
    registry: CollectorRegistry,
    reload: LimitReload | None = None,
    *,
    processes: int = 1,
    owner: str = "",
    snapshot: StoreSnapshot | None = None,
) -> AsyncIterator[Quotas]:
    """Counters (Redis or in-process), limits loaded and refreshed, month spend seeded.

    ``reload`` (the admin API's hook) applies a change to this book at once; ``processes``:
    gateway processes sharing the Redis counters (budget shares in an outage); ``owner``: this
    process's name, kept on each reservation it makes; ``snapshot``: where limits are kept for,
    and read at, a start while the store is down.
    """
    counters: Counters
    redis: RedisCounters | None = None
    if settings.redis_url:
        # Imported when configured: the redis client weighs ~10 MiB in every gateway process.
        from corral.counters.redis import RedisCounters

        redis = RedisCounters.from_url(
            settings.redis_url,
            prefix=settings.redis_prefix,
            pool_size=settings.redis_pool_size,
            pool_wait=settings.redis_pool_wait,
        )
        counters = FailOpenCounters(
            redis, budgets=settings.budgets_on_redis_outage, processes=processes
        )
        CountersMetrics(registry, counters, redis.pool)
    else:
        counters = LocalCounters()
    book = LimitBook(_limits(settings.key_defaults), _limits(settings.team_defaults))
    sync = reload or LimitReload()
    try:
        sync.attach(book, usage, await refresh_limits(book, usage, snapshot), snapshot)
        await seed_and_reconcile(counters, usage, clock)
    except TemporaryError:
        saved = snapshot.limits() if snapshot is not None else None
        if saved is None:
            raise
        _fill(book, saved)
        sync.attach(book, usage, None, snapshot)  # the first refresh that works loads them all
        log.warning("limits: the store is down; using the limits of the local snapshot")

    async def refresh_forever() -> None:
        last_reconcile = clock.monotonic()
        while True:
            await clock.sleep(settings.refresh_interval)
            try:
                await sync()
                if clock.monotonic() - last_reconcile >= RECONCILE_INTERVAL:
                    last_reconcile = clock.monotonic()
                    await seed_and_reconcile(counters, usage, clock)
            except TemporaryError as exc:
                log.warning("limits: %s; keeping the limits loaded before", exc.message)

    task = asyncio.get_running_loop().create_task(refresh_forever(), name="corral-limits")
    try:
        yield Quotas(counters, book, clock, owner=owner)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        if redis is not None:
            await redis.aclose()


async def seed_and_reconcile(counters: Counters, usage: UsageLedger, clock: Clock) -> None:
    """Counters hold at least the ledger's spend this month for every team and key (a budget
    set mid-month counts what was already spent); requests a crashed gateway left are billed
    and their holds settled."""
    period = month_window(clock.now())
    for by in ("team", "key"):
        for holder, spent in (await usage.spend_since(period.starts_at, by)).items():
            await counters.seed_spend(f"{by}:{holder}", period.key, round(spent * MICROS_PER_USD))
    settled = await settle_lost_requests(counters, usage, clock.now())
    for owner, count in Counter(r.owner or "an unknown process" for r in settled).items():
        log.warning(
            "quotas: settled %d expired reservations at their reserved size, made by %s",
            count,
            owner,
        )


async def settle_owned_by(
    counters: Counters, usage: UsageSink, owner: str, now: float
) -> list[Reservation]:
    """Settle at once every reservation a process that died (``owner``) still holds, after its
    usage journal was shipped and settled: these requests never got a whole answer, so each gets
    the estimated record and worst-case settlement of a lost request (see ``lost_requests``)."""
    held = [r for r in await counters.expired_reservations(math.inf) if r.owner == owner]
    records = [lost_request_record(r) for r in held if r.request_id]
    if records:
        await usage.write_usage(records)
    settled = [r for r in held if await counters.settle(r, r.tokens, r.cost_micros, now)]
    if settled:
        log.warning(
            "quotas: settled %d reservations of %s, which died mid-request, at their reserved size",
            len(settled),
            owner,
        )
    return settled


async def settle_lost_requests(
    counters: Counters, usage: UsageLedger, now: float
) -> list[Reservation]:
    """Write an estimated ledger record for every expired reservation, then settle them all.

    Records first: if the store is down this raises and the holds stay for the next run, so a
    lost request is never settled without its record. Writing a record twice keeps one, and a
    real record the gateway wrote before it died stays (see ``lost_requests``). In-process
    counters die with their process, so only shared counters (Redis) carry reservations of a
    crashed gateway into the next start; in-process ones expire only for hung requests.
    """
    expired = await counters.expired_reservations(now)
    records = [lost_request_record(r) for r in expired if r.request_id]
    if records:
        await usage.write_usage(records)
    return await counters.reconcile(now)

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


async def refresh_limits(
    book: LimitBook, usage: UsageLedger, snapshot: StoreSnapshot | None = None
) -> None:
    """Load every key's and team's limits from the store into ``book`` (and ``snapshot``)."""
    rows = await usage.all_limits()
    if snapshot is not None:
        snapshot.save_limits(rows)
    _fill(book, rows)


def _fill(book: LimitBook, rows: list[LimitSetting]) -> None:
    keys: dict[str, Limits] = {}
    teams: dict[str, Limits] = {}
    for row in rows:
        limits = Limits(
            rpm=row.rpm,
            tpm=row.tpm,
            max_concurrent=row.max_concurrent,
            monthly_budget_usd=row.monthly_budget_usd,
        )
        (keys if row.scope == "key" else teams)[row.scope_id] = limits
    book.replace(keys, teams)


RECONCILE_INTERVAL = 30.0
"""Seconds between settling reservations a crashed gateway left and re-seeding month spend."""


@asynccontextmanager
async def running_quotas(
    settings: LimitSettings,
    usage: UsageLedger,
    clock: Clock,
    registry: CollectorRegistry,
    *,
    owner: str = "",
    snapshot: StoreSnapshot | None = None,
) -> AsyncIterator[Quotas]:
    """Counters (Redis or in-process), limits loaded and refreshed, month spend seeded.
    ``owner``: this process's name, kept on each reservation it makes; ``snapshot``: where
    limits are kept for, and read at, a start while the store is down."""
    counters: Counters
    redis: RedisCounters | None = None
    if settings.redis_url:
        # Imported when configured: the redis client weighs ~10 MiB in every gateway process.
        from corral.counters.redis import RedisCounters

        redis = RedisCounters.from_url(settings.redis_url, prefix=settings.redis_prefix)
        counters = FailOpenCounters(redis)
        CountersMetrics(registry, counters)
    else:
        counters = LocalCounters()
    book = LimitBook(_limits(settings.key_defaults), _limits(settings.team_defaults))
    try:
        await refresh_limits(book, usage, snapshot)
        await seed_and_reconcile(counters, usage, clock)
    except TemporaryError:
        saved = snapshot.limits() if snapshot is not None else None
        if saved is None:
            raise
        _fill(book, saved)
        log.warning("limits: the store is down; using the limits of the local snapshot")

    async def refresh_forever() -> None:
        last_reconcile = clock.monotonic()
        while True:
            await clock.sleep(settings.refresh_interval)
            try:
                await refresh_limits(book, usage, snapshot)
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

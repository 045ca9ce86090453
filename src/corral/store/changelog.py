"""The change log: each change to a key, team, user or limits gets the next version number.

A process remembers the last version it applied and reads only the changes after it, so keeping
keys and limits in memory costs one indexed query that finds nothing while nothing changes,
however many keys there are. Versions are handed out by one counter row, incremented as the
last statement of the writing transaction: its row lock orders the writers, so versions commit
in order and a reader that sees version V has seen every version below V (a plain
autoincrement would let a reader skip a slower transaction's lower number for good).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, cast

from sqlalchemy import BigInteger, Integer, String, Table, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from corral.store.tables import Base, UtcTime

ChangeScope = Literal["key", "team", "user", "key_limits", "team_limits"]
"""What changed: a key, a team, a user (their keys' principals), or one key's or team's limits."""

RETAINED = 10_000
"""Changes kept; a process further behind than this reloads everything once."""
PRUNE_EVERY = 100
"""Versions between prunes of the log (a prune is one indexed delete)."""
READ_LIMIT = 2_000
"""Changes read per query; a reader further behind reads again."""


class ChangeVersionRow(Base):
    __tablename__ = "change_version"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)  # the one row: 1
    version: Mapped[int] = mapped_column(BigInteger)


class ChangeRow(Base):
    __tablename__ = "changes"

    version: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    scope: Mapped[str] = mapped_column(String(16))
    ref: Mapped[str] = mapped_column(String(40))
    at: Mapped[float] = mapped_column(UtcTime)


@dataclass(frozen=True, slots=True)
class Change:
    """One entry of the log: ``ref`` (an id) of ``scope`` changed at ``version``."""

    version: int
    scope: str
    ref: str


_VERSION = cast(Table, ChangeVersionRow.__table__)
_CHANGES = cast(Table, ChangeRow.__table__)

Executor = AsyncSession | AsyncConnection


async def record_changes(tx: Executor, changes: Sequence[tuple[str, str]], at: float) -> int:
    """Append ``(scope, ref)`` changes under fresh versions; the newest version.

    Call it last in the transaction: the counter's row lock is held until commit, and taking it
    after every other lock means two writers never wait on each other in a cycle.
    """
    unique = list(dict.fromkeys(changes))
    bump = (
        update(_VERSION)
        .where(_VERSION.c.id == 1)
        .values(version=_VERSION.c.version + len(unique))
        .returning(_VERSION.c.version)
    )
    newest = int((await tx.execute(bump)).scalar_one())
    first = newest - len(unique) + 1
    rows = [
        {"version": first + i, "scope": scope, "ref": ref, "at": at}
        for i, (scope, ref) in enumerate(unique)
    ]
    await tx.execute(insert(_CHANGES), rows)
    if newest // PRUNE_EVERY != (first - 1) // PRUNE_EVERY:
        await tx.execute(delete(_CHANGES).where(_CHANGES.c.version <= newest - RETAINED))
    return newest


async def current_version(tx: Executor) -> int:
    """The newest version committed (read it before loading a snapshot, then replay from it)."""
    found = (await tx.execute(select(_VERSION.c.version).where(_VERSION.c.id == 1))).scalar()
    return int(found or 0)


async def changes_since(tx: Executor, version: int) -> list[Change] | None:
    """Changes after ``version``, oldest first (at most READ_LIMIT); None when the log was
    pruned past ``version`` and the reader must load everything again."""
    query = (
        select(_CHANGES.c.version, _CHANGES.c.scope, _CHANGES.c.ref)
        .where(_CHANGES.c.version > version)
        .order_by(_CHANGES.c.version)
        .limit(READ_LIMIT)
    )
    found = [Change(int(v), str(s), str(r)) for v, s, r in await tx.execute(query)]
    if found and found[0].version != version + 1:
        return None
    return found

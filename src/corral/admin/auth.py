"""Who is calling the admin API: the bearer key, checked against the in-memory key directory."""

from __future__ import annotations

import re
from typing import Protocol

from corral.errors import AuthenticationFailed
from corral.principals import Principal

# A Corral key is "ck-" and URL-safe base64; anything else is refused before hashing.
_KEY_SHAPE = re.compile(r"ck-[A-Za-z0-9_-]{16,128}")
_MAX_HEADER = 512


class KeyCache(Protocol):
    """What the admin API needs of the key cache (KeySync implements it)."""

    def lookup(self, key: str, now: float) -> Principal | None:
        """The principal of an active key; None when unknown, revoked or expired."""
        ...

    async def refresh(self) -> None:
        """Apply what changed in the store, so a change made here applies here at once."""
        ...


def authenticate(authorization: str | None, keys: KeyCache, now: float) -> Principal:
    """The principal behind an ``Authorization: Bearer <key>`` header, or 401.

    Missing, empty, enormous, non-ASCII, malformed, unknown, revoked and expired keys all get
    the same answer, which never repeats what was sent.
    """
    if not authorization:
        raise AuthenticationFailed(
            "no API key; send 'Authorization: Bearer <key>' (create keys with `corral key create`)"
        )
    scheme, _, key = authorization[:_MAX_HEADER].partition(" ")
    key = key.strip()
    well_formed = (
        len(authorization) <= _MAX_HEADER
        and scheme.lower() == "bearer"
        and _KEY_SHAPE.fullmatch(key) is not None
    )
    principal = keys.lookup(key, now) if well_formed else None
    if principal is None:
        raise AuthenticationFailed(
            "the API key is not valid (unknown, revoked or expired); ask your team-admin for a "
            "new one or check that 'Authorization: Bearer <key>' carries the whole key"
        )
    return principal

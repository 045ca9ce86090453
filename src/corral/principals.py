"""Who is calling: API keys (format, keyed hash, display) and the principal a key stands for."""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

KEY_PREFIX = "ck-"
SESSION_KEY_NAME = "portal sign-in"
"""Name of the key the portal mints for one browser session; it ends with the session, and
with the key that signed in (revoking that key revokes these)."""
_KEY_BYTES = 24  # 192 random bits


class Role(StrEnum):
    """What a principal may do; each role includes the ones below it for its own scope."""

    PLATFORM_ADMIN = "platform-admin"
    TEAM_ADMIN = "team-admin"
    DEVELOPER = "developer"


@dataclass(frozen=True, slots=True)
class Principal:
    """The identity behind an API key, as the gateway and admin API see it."""

    key_id: str
    role: Role
    team_id: str | None = None
    user_id: str | None = None
    allowed_models: frozenset[str] | None = None  # None: every model
    expires_at: float | None = None
    team_name: str | None = None  # shown beside the id where people read it (429s)

    def may_use(self, model: str) -> bool:
        """Whether this key may call ``model`` (its public name)."""
        return self.allowed_models is None or model in self.allowed_models


def new_api_key() -> str:
    """A fresh API key: a recognisable prefix and 192 random bits, URL-safe."""
    return KEY_PREFIX + secrets.token_urlsafe(_KEY_BYTES)


def hash_key(server_secret: bytes, key: str) -> str:
    """The keyed hash (HMAC-SHA-256) under which a key is stored; the key itself never is."""
    # hmac.digest is OpenSSL's one-shot HMAC: the same value as hmac.new(...), a third the cost.
    return hmac.digest(server_secret, key.encode("utf-8", "surrogateescape"), "sha256").hex()


def same_hash(a: str, b: str) -> bool:
    """Constant-time comparison of two key hashes."""
    return hmac.compare_digest(a, b)


def display_key(key: str) -> str:
    """How a key is shown after creation: its prefix and last four characters only."""
    return f"{KEY_PREFIX}…{key[-4:]}"


class KeyDirectory:
    """The gateway's in-memory map of key hash → principal; no database on the request path.

    A refresher loads the whole map once, then applies only the keys that changed (see
    ``corral.store.keysync``), so a revoked key stops working everywhere within about a
    second and an expired one at its expiry. Lookup is by the key's HMAC: a
    timing difference in the dict lookup tells an attacker nothing about any stored key, since
    they cannot steer an HMAC without the server secret (admin paths use ``same_hash``).
    """

    def __init__(self, server_secret: bytes) -> None:
        self._secret = server_secret
        self._by_hash: dict[str, Principal] = {}
        self._pinned: dict[str, Principal] = {}

    def replace(self, entries: dict[str, Principal]) -> None:
        """Swap in a fresh map of key hash → principal (atomic for readers); pinned keys stay."""
        self._by_hash = {**entries, **self._pinned}

    def apply(self, active: Mapping[str, Principal], gone: Iterable[str]) -> None:
        """Apply changed keys: ``active`` ones work (new or updated), ``gone`` hashes stop.

        In place: one event loop reads and writes it, so each lookup sees the map before or
        after an entry changed, and a change costs what it touches, not the whole map.
        """
        for digest in gone:
            if digest not in self._pinned:
                self._by_hash.pop(digest, None)
        self._by_hash.update(active)

    def pin(self, key: str, principal: Principal) -> None:
        """A key that lives only in this process's memory (e.g. the portal's own credential):
        never stored, gone when the process ends, kept across refreshes."""
        digest = self.hash(key)
        self._pinned[digest] = principal
        self.add(digest, principal)

    def add(self, key_hash: str, principal: Principal) -> None:
        """Make one new key usable at once, before the next refresh."""
        self._by_hash[key_hash] = principal

    def hash(self, key: str) -> str:
        """The keyed hash of ``key`` under this server's secret."""
        return hash_key(self._secret, key)

    def lookup(self, key: str, now: float) -> Principal | None:
        """The principal for ``key``, or None when it is unknown, revoked or expired."""
        digest = self.hash(key)
        principal = self._by_hash.get(digest)
        if principal is None:
            return None
        if principal.expires_at is not None and now >= principal.expires_at:
            return None
        return principal

    def entries(self) -> dict[str, Principal]:
        """A copy of the map of key hash → principal (pinned keys included)."""
        return dict(self._by_hash)

    def __len__(self) -> int:
        return len(self._by_hash)

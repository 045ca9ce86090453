"""Who is calling: API keys (format, keyed hash, display) and the principal a key stands for."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from enum import StrEnum

KEY_PREFIX = "ck-"
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

    def may_use(self, model: str) -> bool:
        """Whether this key may call ``model`` (its public name)."""
        return self.allowed_models is None or model in self.allowed_models


def new_api_key() -> str:
    """A fresh API key: a recognisable prefix and 192 random bits, URL-safe."""
    return KEY_PREFIX + secrets.token_urlsafe(_KEY_BYTES)


def hash_key(server_secret: bytes, key: str) -> str:
    """The keyed hash (HMAC-SHA-256) under which a key is stored; the key itself never is."""
    return hmac.new(server_secret, key.encode("utf-8", "surrogateescape"), hashlib.sha256).hexdigest()


def same_hash(a: str, b: str) -> bool:
    """Constant-time comparison of two key hashes."""
    return hmac.compare_digest(a, b)


def display_key(key: str) -> str:
    """How a key is shown after creation: its prefix and last four characters only."""
    return f"{KEY_PREFIX}…{key[-4:]}"

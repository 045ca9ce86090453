"""Browser sessions: sealed (encrypted and signed) cookies that carry the signed-in key."""

from __future__ import annotations

import base64
import json
import secrets
from dataclasses import asdict, dataclass, field, replace

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from corral.principals import Role

SESSION_COOKIE = "corral_session"
LOGIN_COOKIE = "corral_sso"


@dataclass(frozen=True, slots=True)
class Session:
    """One browser's session. Anonymous until sign-in; ``key`` is the credential it acts with.

    ``minted`` keys were created by the portal for this sign-in (SSO) and are revoked at
    sign-out; a pasted key belongs to its owner and is only forgotten.
    """

    sid: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    key: str | None = field(default=None, repr=False)
    key_id: str | None = None
    minted: bool = False
    role: Role | None = None
    name: str = ""
    user_id: str | None = None
    team_id: str | None = None
    team_name: str | None = None
    expires_at: float = 0.0

    @property
    def signed_in(self) -> bool:
        return self.key is not None

    def renewed(self) -> Session:
        """The same session under a fresh id (at sign-in, so a planted id is worthless)."""
        return replace(self, sid=secrets.token_urlsafe(16))


def derive_key(secret: bytes, purpose: str) -> bytes:
    """A 32-byte key for one purpose, derived from the server's secret (HKDF-SHA-256)."""
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose.encode())
    return hkdf.derive(secret)


class Sealer:
    """Seals JSON-able mappings into cookie values and opens them, refusing old or forged ones."""

    def __init__(self, secret: bytes, purpose: str) -> None:
        self._fernet = Fernet(base64.urlsafe_b64encode(derive_key(secret, purpose)))

    def seal(self, data: dict[str, object]) -> str:
        return self._fernet.encrypt(json.dumps(data, separators=(",", ":")).encode()).decode()

    def open(self, token: str | None, max_age: float) -> dict[str, object] | None:
        """The sealed mapping, or None when missing, tampered with or older than ``max_age``."""
        if not token or len(token) > 4096:
            return None
        try:
            raw = self._fernet.decrypt(token.encode(), ttl=max(1, int(max_age)))
            data = json.loads(raw)
        except (InvalidToken, ValueError):
            return None
        return data if isinstance(data, dict) else None


def seal_session(sealer: Sealer, session: Session) -> str:
    return sealer.seal(asdict(session))


def open_session(sealer: Sealer, token: str | None, now: float, max_age: float) -> Session:
    """The session in a cookie, or a fresh anonymous one when it is missing, bad or expired."""
    data = sealer.open(token, max_age)
    if data is None:
        return Session()
    session = _session_from(data)
    if session is None or (session.signed_in and session.expires_at <= now):
        return Session()
    return session


def _session_from(data: dict[str, object]) -> Session | None:
    def text(name: str) -> str | None:
        value = data.get(name)
        return value if isinstance(value, str) else None

    sid, role, expires = text("sid"), text("role"), data.get("expires_at")
    if sid is None or not isinstance(expires, int | float) or role not in (None, *Role):
        return None
    return Session(
        sid=sid,
        key=text("key"),
        key_id=text("key_id"),
        minted=data.get("minted") is True,
        role=None if role is None else Role(role),
        name=text("name") or "",
        user_id=text("user_id"),
        team_id=text("team_id"),
        team_name=text("team_name"),
        expires_at=float(expires),
    )

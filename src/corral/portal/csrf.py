"""CSRF tokens bound to a browser session (HMAC of its id), and the same-origin check."""

from __future__ import annotations

import hashlib
import hmac
from urllib.parse import urlsplit

HEADER = "x-csrf-token"
FIELD = "csrf_token"


def token_for(secret: bytes, session_id: str) -> str:
    """The CSRF token of a session: unguessable without the secret, fixed for the session."""
    return hmac.new(secret, b"csrf:" + session_id.encode(), hashlib.sha256).hexdigest()


def token_matches(secret: bytes, session_id: str, offered: str | None) -> bool:
    """Whether ``offered`` is this session's token (constant-time)."""
    if not offered or len(offered) > 128:
        return False
    return hmac.compare_digest(token_for(secret, session_id), offered)


def same_origin(origin: str | None, host: str | None) -> bool:
    """Whether a request's Origin header (when the browser sent one) names this host.

    Browsers send Origin on every cross-site POST; a missing one is left to the token check.
    """
    if origin is None:
        return True
    if origin == "null" or host is None:
        return False
    return urlsplit(origin).netloc.lower() == host.lower()

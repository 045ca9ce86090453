"""Corral's address as the CLI takes it: whatever a user pastes becomes the base URL."""

from __future__ import annotations

DEFAULT_URL = "http://127.0.0.1:8000"
# What people paste: the OpenAI base URL from the welcome text, the admin API, a page.
_SUFFIXES = ("/admin/v1", "/v1", "/metrics", "/ui")


def base_url(url: str | None) -> str:
    """``url`` (or the default) without a trailing slash or a known API suffix:
    ``http://h:8000/v1/`` → ``http://h:8000``."""
    text = (url or DEFAULT_URL).strip().rstrip("/")
    for suffix in _SUFFIXES:
        if text.endswith(suffix):
            return text.removesuffix(suffix)
    return text


def metrics_url(url: str | None) -> str:
    """A /metrics page: a Corral address gets ``/metrics``; any other path is kept as given
    (a health agent's or a local engine's page)."""
    text = (url or DEFAULT_URL).strip().rstrip("/")
    if text.endswith("/metrics"):
        return text
    stripped = base_url(text)
    path = stripped.split("://", 1)[-1].partition("/")[2]
    return stripped + "/metrics" if not path else text

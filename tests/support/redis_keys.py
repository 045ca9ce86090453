"""The Redis the tests use, and removing what a test wrote there under its own key prefix."""

from __future__ import annotations

import redis

REDIS_URL = "redis://127.0.0.1:6379/0"


def forget(prefix: str) -> None:
    """Delete every key Corral's counters made under ``prefix`` (they start ``{prefix}``)."""
    client = redis.Redis.from_url(REDIS_URL)
    try:
        keys = list(client.scan_iter(match="{" + prefix + "}*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()

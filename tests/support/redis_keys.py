"""Removing what a test wrote in the tests' Redis under its own key prefix."""

from __future__ import annotations

import redis

from support.services import redis_url


def forget(prefix: str) -> None:
    """Delete every key Corral's counters made under ``prefix`` (they start ``{prefix}``)."""
    client = redis.Redis.from_url(redis_url())
    try:
        keys = list(client.scan_iter(match="{" + prefix + "}*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()

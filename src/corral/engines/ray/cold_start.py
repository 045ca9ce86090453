"""Ray Serve's cold-start readiness: the Serve proxy holds a request while it starts a replica."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

import aiohttp


class HealthProbe:
    """ReadinessProbe through the Serve proxy: ``GET {base}/health`` answers once a replica runs.

    While a deployment has no replica, the proxy holds the request and Ray starts one (its
    cold-start path), so the probe itself is the wake-up.
    """

    def __init__(self, base_urls: Mapping[str, str], session: aiohttp.ClientSession) -> None:
        self._bases = base_urls
        self._session = session

    async def ready(self, model: str, timeout_s: float) -> bool:
        base = self._bases.get(model)
        if base is None:
            return True  # not a Ray-served model: nothing to wake
        url = base.removesuffix("/").removesuffix("/v1") + "/health"
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout_s
        while (left := end - loop.time()) > 0:
            try:
                timeout = aiohttp.ClientTimeout(total=left)
                async with self._session.get(url, timeout=timeout) as reply:
                    if reply.status == 200:
                        return True
            except (aiohttp.ClientError, TimeoutError):
                pass
            await asyncio.sleep(min(0.5, max(0.0, end - loop.time())))
        return False

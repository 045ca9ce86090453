"""A real gateway on loopback relaying to a real FakeEngine, both on the server thread's loop."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import openai

from corral.catalog import Endpoint, FairQueueing, ModelSpec, OpenAIEngine, Timeouts
from corral.composition.platform import Platform, running_platform
from corral.composition.serving import ServerThread
from corral.engines.fake import FakeEngine, FakeScript
from corral.gateway.metering import Meter
from corral.principals import KeyDirectory, Principal, Role, new_api_key
from corral.settings import ConnectionLimits, CorralSettings, ServerSettings
from corral.store.usage import SqlUsage

SECRET = b"test-secret"


@dataclass
class GatewayUnderTest:
    server: ServerThread
    engine: FakeEngine
    key: str
    _clients: list[openai.OpenAI] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def platform(self) -> Platform:
        assert self.server.platform is not None
        return self.server.platform

    def client(self, key: str | None = None, **kwargs: object) -> openai.OpenAI:
        """An OpenAI SDK client for this gateway, closed by ``close``."""
        client = openai.OpenAI(
            base_url=f"{self.url}/v1", api_key=key or self.key, max_retries=0, **kwargs
        )
        self._clients.append(client)
        return client

    def close(self) -> None:
        for client in self._clients:
            client.close()


def start_gateway(
    script: FakeScript | None = None,
    *,
    timeouts: Timeouts | None = None,
    max_body_bytes: int = 4 * 1024 * 1024,
    extra_urls: tuple[str, ...] = (),
    usage_url: str | Callable[[], str] | None = None,
    before_start: Callable[[], Awaitable[None]] | None = None,
    data_dir: Path | None = None,
    fair_queueing: FairQueueing | None = None,
    extra_keys: Mapping[str, Principal] | None = None,
    limits: ConnectionLimits | None = None,
    meters: tuple[Meter, ...] = (),
) -> tuple[ServerThread, FakeEngine, str]:
    engine = FakeEngine(script or FakeScript(), model="fake-chat")
    keys = KeyDirectory(SECRET)
    key = new_api_key()
    keys.add(
        keys.hash(key),
        Principal(key_id="key_test", role=Role.PLATFORM_ADMIN, team_id="team_test"),
    )
    for extra, principal in (extra_keys or {}).items():
        keys.add(keys.hash(extra), principal)

    @asynccontextmanager
    async def factory() -> AsyncIterator[Platform]:
        await engine.start()
        urls = [engine.base_url, *extra_urls]
        spec = ModelSpec(
            name="fake-chat",
            aliases=["gpt-fake"],
            engine=OpenAIEngine(endpoints=[Endpoint(url=u) for u in urls]),
            timeouts=timeouts or Timeouts(),
            fair_queueing=fair_queueing,
        )
        settings = CorralSettings(
            models=[spec],
            server=ServerSettings(max_body_bytes=max_body_bytes),
            data_dir=data_dir or Path(".corral-test"),
        )
        # The ledger's database connections belong to the server's event loop: open and close
        # them there.
        if before_start is not None:
            await before_start()
        url = usage_url() if callable(usage_url) else usage_url
        usage = SqlUsage(url) if url else None
        try:
            async with running_platform(
                settings, keys=keys, usage_sink=usage, meters=meters
            ) as platform:
                yield platform
        finally:
            if usage is not None:
                await usage.close()
            await engine.stop()

    return ServerThread(factory, limits=limits), engine, key

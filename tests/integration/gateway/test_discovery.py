"""The gateway learns models after start, and holds requests for a model scaled to zero."""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace

import openai
import pytest

from corral.composition.platform import Platform, running_platform
from corral.composition.serving import ServerThread
from corral.discovery import DiscoveredModel
from corral.engines.fake import FakeEngine, FakeScript
from corral.principals import KeyDirectory, Principal, Role, new_api_key
from corral.settings import ColdStartSettings, CorralSettings, DiscoverySettings

INTERVAL = 0.1


@dataclass
class ScriptedSource:
    """A ModelSource the test changes while the gateway runs (reads come from its loop)."""

    name: str = "scripted"
    reported: list[DiscoveredModel] = field(default_factory=list)
    reads: int = 0

    async def models(self) -> list[DiscoveredModel]:
        self.reads += 1
        return list(self.reported)


@dataclass
class Running:
    server: ServerThread
    source: ScriptedSource
    engine_url: str
    key: str

    def client(self) -> openai.OpenAI:
        return openai.OpenAI(base_url=f"{self.server.url}/v1", api_key=self.key, max_retries=0)

    def wait_reads(self, more: int = 2) -> None:
        """Until the gateway read the source ``more`` more times (so it saw the last change)."""
        target = self.source.reads + more
        end = time.monotonic() + 10
        while self.source.reads < target:
            assert time.monotonic() < end, "the gateway stopped reading its model source"
            time.sleep(0.02)


def _start(cold: ColdStartSettings) -> Running:
    source = ScriptedSource()
    engine = FakeEngine(FakeScript(tokens=4), model="learned")
    keys = KeyDirectory(b"test-secret")
    key = new_api_key()
    keys.add(keys.hash(key), Principal(key_id="k", role=Role.DEVELOPER, team_id="t"))
    settings = CorralSettings(discovery=DiscoverySettings(interval=INTERVAL, cold_start=cold))
    urls: dict[str, str] = {}

    @asynccontextmanager
    async def factory() -> AsyncIterator[Platform]:
        await engine.start()
        urls["engine"] = engine.base_url
        try:
            async with running_platform(settings, keys=keys, model_sources=[source]) as platform:
                yield platform
        finally:
            await engine.stop()

    server = ServerThread(factory)
    server.__enter__()
    return Running(server, source, urls["engine"], key)


@pytest.fixture
def gateway() -> Iterator[Running]:
    running = _start(ColdStartSettings(max_wait_s=30, retry_after_s=3))
    try:
        yield running
    finally:
        running.server.__exit__(None, None, None)


def _ask(client: openai.OpenAI, model: str) -> str:
    reply = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "hi"}], max_tokens=4
    )
    return reply.choices[0].message.content or ""


def test_a_model_deployed_after_start_is_served_and_forgotten_when_gone(gateway: Running) -> None:
    client = gateway.client()
    with pytest.raises(openai.NotFoundError):
        _ask(client, "learned")
    gateway.source.reported = [
        DiscoveredModel("learned", (gateway.engine_url,), source="scripted", min_replicas=1)
    ]
    gateway.wait_reads()
    assert [m.id for m in client.models.list()] == ["learned"]
    assert _ask(client, "learned").startswith("Hello")
    stream = client.chat.completions.create(
        model="learned", messages=[{"role": "user", "content": "hi"}], stream=True
    )
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices)

    gateway.source.reported = []
    gateway.wait_reads()
    with pytest.raises(openai.NotFoundError):
        _ask(client, "learned")
    client.close()


def test_a_request_for_a_model_at_zero_is_held_until_a_replica_serves(gateway: Running) -> None:
    cold = DiscoveredModel(
        "learned", (gateway.engine_url,), source="scripted", min_replicas=0, ready_replicas=0
    )
    gateway.source.reported = [cold]
    gateway.wait_reads()
    client = gateway.client()
    answers: list[str] = []
    held = threading.Thread(target=lambda: answers.append(_ask(client, "learned")))
    held.start()
    time.sleep(1.0)
    assert held.is_alive(), "the request was not held while no replica ran"
    assert not answers
    gateway.source.reported = [replace(cold, ready_replicas=1)]
    held.join(10)
    assert answers
    assert answers[0].startswith("Hello")
    client.close()


def test_a_cold_start_longer_than_the_wait_is_a_503_with_retry_after() -> None:
    running = _start(ColdStartSettings(max_wait_s=0.5, retry_after_s=7))
    try:
        running.source.reported = [
            DiscoveredModel(
                "learned", (running.engine_url,), source="s", min_replicas=0, ready_replicas=0
            )
        ]
        running.wait_reads()
        client = running.client()
        started = time.monotonic()
        with pytest.raises(openai.InternalServerError) as caught:
            _ask(client, "learned")
        assert time.monotonic() - started < 5
        error = caught.value
        assert error.status_code == 503
        assert error.response.headers["retry-after"] == "7"
        body = error.response.json()["error"]
        assert body["code"] == "model_cold_start"
        assert "'learned' is starting" in body["message"]
        client.close()
    finally:
        running.server.__exit__(None, None, None)


def test_a_learned_model_with_an_unusable_url_is_skipped() -> None:
    running = _start(ColdStartSettings())
    try:
        platform = running.server.platform
        assert platform is not None
        running.source.reported = [
            DiscoveredModel("learned", (running.engine_url,), source="s"),
            DiscoveredModel("also", ("not a url",), source="s"),
        ]
        running.wait_reads()
        assert platform.routes.learned() == ["learned"]  # the unusable one is skipped
    finally:
        running.server.__exit__(None, None, None)

"""Several replicas, some broken: retries, ejection and recovery, fallbacks, abort, overload."""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import openai

from corral.catalog import (
    Endpoint,
    EndpointHealth,
    FakeEngineConfig,
    ModelSpec,
    OpenAIEngine,
    Timeouts,
)
from corral.composition.platform import Platform, running_platform
from corral.composition.serving import ServerThread
from corral.engines.fake import FakeEngine, FakeScript
from corral.principals import KeyDirectory, Principal, Role, new_api_key
from corral.settings import CorralSettings, ServerSettings

CHAT = {"model": "fake-chat", "messages": [{"role": "user", "content": "hello"}]}


def cluster(
    scripts: list[FakeScript],
    *,
    dead_urls: tuple[str, ...] = (),
    health: EndpointHealth | None = None,
    timeouts: Timeouts | None = None,
    fallback: bool = False,
    server: ServerSettings | None = None,
) -> tuple[ServerThread, list[FakeEngine], str]:
    engines = [FakeEngine(s, model="fake-chat") for s in scripts]
    keys = KeyDirectory(b"secret")
    key = new_api_key()
    keys.add(keys.hash(key), Principal(key_id="key_1", role=Role.DEVELOPER, team_id="team_1"))

    @asynccontextmanager
    async def factory() -> AsyncIterator[Platform]:
        for engine in engines:
            await engine.start()
        urls = [e.base_url for e in engines] + list(dead_urls)
        models = [
            ModelSpec(
                name="fake-chat",
                engine=OpenAIEngine(endpoints=[Endpoint(url=u) for u in urls]),
                health=health or EndpointHealth(probe_interval=0),
                timeouts=timeouts or Timeouts(),
                fallbacks=["backup"] if fallback else [],
            )
        ]
        if fallback:
            models.append(ModelSpec(name="backup", engine=FakeEngineConfig(tokens=3)))
        settings = CorralSettings(models=models, server=server or ServerSettings())
        try:
            async with running_platform(settings, keys=keys) as platform:
                yield platform
        finally:
            for engine in engines:
                await engine.stop()

    return ServerThread(factory), engines, key


def dead_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}/v1"


def test_broken_replicas_are_retried_and_ejected_then_readmitted() -> None:
    healthy = FakeScript(tokens=4)
    failing = FakeScript(failure="error")
    hanging_up = FakeScript(failure="hang_up")
    stalling = FakeScript(failure="stall")
    server, engines, key = cluster(
        [healthy, failing, hanging_up, stalling],
        dead_urls=(dead_url(),),
        health=EndpointHealth(
            probe_interval=0.2,
            eject_after=1,
            ejection_seconds=0.5,
            max_ejection_seconds=1,
            max_ejected_share=0.8,
            retry_budget=1.0,  # this test is about where retries go, not how many are allowed
        ),
        timeouts=Timeouts(first_byte=0.3),
    )
    with server, openai.OpenAI(base_url=f"{server.url}/v1", api_key=key, max_retries=0) as client:
        for _ in range(40):
            reply = client.chat.completions.create(**CHAT)  # type: ignore[call-overload]
            assert reply.choices[0].message.content
        route = server.platform.routes.get("fake-chat")  # type: ignore[union-attr]
        assert route is not None
        now = server.run(_monotonic())
        assert {i for i in range(5) if route.outliers.is_ejected(i, now)} <= {1, 2, 3, 4}
        assert route.outliers.health(1).ejections >= 1
        served_before = len(engines[0].state.requests)
        failing.failure = "none"  # the 500-replica recovers; probes re-admit it
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and route.outliers.is_ejected(
            1, server.run(_monotonic())
        ):
            time.sleep(0.05)
        assert not route.outliers.is_ejected(1, server.run(_monotonic()))
        for _ in range(20):
            client.chat.completions.create(**CHAT)  # type: ignore[call-overload]
        assert len(engines[1].state.requests) > 0
        assert len(engines[0].state.requests) - served_before < 20


async def _monotonic() -> float:
    from corral.clock import SystemClock

    return SystemClock().monotonic()


def test_fallback_model_answers_when_every_replica_is_down() -> None:
    server, _, key = cluster([FakeScript(failure="error")], fallback=True)
    with server, openai.OpenAI(base_url=f"{server.url}/v1", api_key=key, max_retries=0) as client:
        reply = client.chat.completions.create(**CHAT)  # type: ignore[call-overload]
        assert reply.model == "backup"


def test_no_retry_after_the_first_byte_reached_the_client() -> None:
    broken = FakeScript(tokens=10, token_delay=0.001, failure="disconnect", fail_after_tokens=3)
    server, engines, key = cluster([broken, FakeScript()])
    with server, httpx.Client(timeout=10) as client:
        for _ in range(6):
            body = {**CHAT, "stream": True}
            headers = {"Authorization": f"Bearer {key}"}
            response = client.post(f"{server.url}/v1/chat/completions", json=body, headers=headers)
            events = [e for e in response.content.split(b"\n\n") if e]
            if b'"error"' in events[-1]:
                assert json.loads(events[-1][6:])["error"]["code"] == "upstream_error"
    assert sum(len(e.state.requests) for e in engines) == 6  # each request went out once


def test_client_abort_cancels_upstream_within_a_second_every_time() -> None:
    slow = FakeScript(tokens=10_000, token_delay=0.01)
    server, engines, key = cluster([slow])
    body = json.dumps({**CHAT, "stream": True}).encode()
    request = (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + f"Authorization: Bearer {key}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    delays = []
    with server:
        for run in range(100):
            with socket.create_connection(("127.0.0.1", server.port)) as sock:
                sock.sendall(request)
                assert b"200 OK" in sock.recv(65536)
            closed = time.monotonic()
            seen = None
            while time.monotonic() - closed < 2:
                if len(engines[0].state.requests) > run:
                    seen = engines[0].state.requests[run]
                    if seen.outcome != "open":
                        break
                time.sleep(0.002)
            assert seen is not None
            assert seen.outcome == "client_gone"
            delays.append(time.monotonic() - closed)
    assert max(delays) < 1.0


def _rss_mib() -> float:
    with open(f"/proc/{os.getpid()}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def test_overload_sheds_with_503_and_memory_stays_flat() -> None:
    import asyncio

    slow = FakeScript(tokens=2, time_to_first_token=0.3)
    server, _, key = cluster([slow], server=ServerSettings(max_in_flight=20))

    async def burst(n: int) -> list[int]:
        async with httpx.AsyncClient(timeout=10, limits=httpx.Limits(max_connections=n)) as client:
            headers = {"Authorization": f"Bearer {key}"}
            url = f"{server.url}/v1/chat/completions"
            replies = await asyncio.gather(
                *(client.post(url, json=CHAT, headers=headers) for _ in range(n))
            )
            for reply in replies:
                if reply.status_code == 503:
                    assert int(reply.headers["retry-after"]) >= 1
                    assert reply.json()["error"]["code"] == "overloaded"
            return [r.status_code for r in replies]

    with server:
        before = _rss_mib()
        for _ in range(3):
            statuses = asyncio.run(burst(200))
            assert statuses.count(200) >= 20
            assert statuses.count(503) > 0
            assert set(statuses) <= {200, 503}
        assert _rss_mib() - before < 100

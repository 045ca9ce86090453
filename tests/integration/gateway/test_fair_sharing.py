"""Through the real gateway: a team that leaves max_tokens unset is not starved by a flood."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import httpx
import pytest

from corral.catalog import FairQueueing
from corral.engines.fake import FakeEngine, FakeScript, SeenRequest
from corral.principals import Principal, Role, new_api_key
from support.gateway_harness import GatewayUnderTest, start_gateway

HEAVY, LIGHT = new_api_key(), new_api_key()
FLOODERS = 8


@pytest.fixture
def saturated() -> Iterator[GatewayUnderTest]:
    """One slot; a wait past 5 s is a 503, so a starved request fails fast instead of hanging."""
    server, engine, key = start_gateway(
        FakeScript(tokens=5, time_to_first_token=0.03, token_delay=0.01),
        fair_queueing=FairQueueing(max_in_flight_per_endpoint=1, max_wait_seconds=5.0),
        extra_keys={
            HEAVY: Principal(key_id="key_heavy", role=Role.DEVELOPER, team_id="heavy"),
            LIGHT: Principal(key_id="key_light", role=Role.DEVELOPER, team_id="light"),
        },
    )
    with server:
        yield GatewayUnderTest(server, engine, key)


async def stream(client: httpx.AsyncClient, key: str, team: str, max_tokens: int | None) -> int:
    body: dict[str, object] = {
        "model": "fake-chat",
        "messages": [{"role": "user", "content": team}],
        "stream": True,
    }
    if max_tokens is not None:
        body["max_tokens"] = max_tokens
    headers = {"Authorization": f"Bearer {key}"}
    async with client.stream("POST", "/v1/chat/completions", json=body, headers=headers) as reply:
        await reply.aread()
        return reply.status_code


def sent_by(engine: FakeEngine, team: str) -> list[SeenRequest]:
    return [r for r in engine.state.requests if r.body["messages"][0]["content"] == team]


async def test_a_team_without_max_tokens_is_not_starved_by_a_flood_that_sets_it(
    saturated: GatewayUnderTest,
) -> None:
    engine, stop = saturated.engine, asyncio.Event()
    limits = httpx.Limits(max_connections=FLOODERS + 2)
    async with httpx.AsyncClient(base_url=saturated.url, timeout=30, limits=limits) as client:

        async def flood() -> None:
            while not stop.is_set():
                await stream(client, HEAVY, "heavy", 5)
                if len(sent_by(engine, "heavy")) >= 3:
                    warmed.set()

        warmed = asyncio.Event()
        flooders = [asyncio.create_task(flood()) for _ in range(FLOODERS)]
        await asyncio.wait_for(warmed.wait(), 10)  # the heavy line is long before light comes
        statuses, overtaken = [], []
        for _ in range(3):  # each is served 5 tokens, yet may use 4096 (the model default)
            sent = time.monotonic()
            statuses.append(await stream(client, LIGHT, "light", None))
            if statuses[-1] == 200:
                served = sent_by(engine, "light")[-1].started
                heavy = sent_by(engine, "heavy")
                overtaken.append(sum(1 for r in heavy if sent <= r.started < served))
        stop.set()
        await asyncio.gather(*flooders)
    assert statuses == [200, 200, 200]
    # The one slot frees, and the light team, the furthest behind in tokens, goes next.
    assert max(overtaken) <= 2, overtaken
    assert len(sent_by(engine, "heavy")) > 3  # the flood was really there

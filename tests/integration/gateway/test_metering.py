"""Exactly one ledger record per request, with the tokens the client received, in SQL."""

from __future__ import annotations

import asyncio
import json
import random
from pathlib import Path

import httpx
import openai

from corral.engines.fake import FakeScript
from corral.store.migrate import upgrade
from corral.store.usage import SqlUsage, UsageFilter
from support.databases import sqlite_database
from support.gateway_harness import start_gateway

CHAT = {"model": "fake-chat", "messages": [{"role": "user", "content": "one two three"}]}


def report(url: str) -> dict[str, dict[str, object]]:
    """Every ledger row by request id; fails if a request id has more than one row, or if the
    grouped report counts another number of requests than there are rows."""

    async def read() -> list[dict[str, object]]:
        usage = SqlUsage(url)
        try:
            return await usage.report(UsageFilter(since=0), ["key"])
        finally:
            await usage.close()

    async def rows() -> list[dict[str, object]]:
        from sqlalchemy import select

        from corral.store.usage import UsageRow

        usage = SqlUsage(url)
        try:
            async with usage._engine.connect() as conn:
                result = await conn.execute(select(UsageRow))
                return [dict(r._mapping) for r in result]
        finally:
            await usage.close()

    grouped = asyncio.run(read())
    found = asyncio.run(rows())
    ids = [str(row["request_id"]) for row in found]
    assert len(ids) == len(set(ids)), "a request id has more than one ledger row"
    assert sum(int(str(group["requests"])) for group in grouped) == len(found)
    return {str(row["request_id"]): row for row in found}


def test_every_request_gets_exactly_one_record(database: str, tmp_path: Path) -> None:
    server, _, key = start_gateway(FakeScript(tokens=8), usage_url=database, data_dir=tmp_path)
    ids = []
    with server, openai.OpenAI(base_url=f"{server.url}/v1", api_key=key, max_retries=0) as client:
        for _ in range(5):
            raw = client.chat.completions.with_raw_response.create(**CHAT)  # type: ignore[call-overload]
            ids.append(raw.headers["x-request-id"])
        with client.chat.completions.with_streaming_response.create(  # type: ignore[call-overload]
            **CHAT, stream=True, max_tokens=3
        ) as stream:
            ids.append(stream.headers["x-request-id"])
            list(stream.iter_lines())
    records = report(database)
    assert sorted(records) == sorted(ids)
    streamed = records[ids[-1]]
    assert streamed["completion_tokens"] == 3
    assert streamed["prompt_tokens"] == 3
    assert streamed["estimated"] is False
    assert streamed["team_id"] == "team_test"


def test_broken_streams_are_billed_for_what_the_client_received(tmp_path: Path) -> None:
    """Chaos: the engine dies mid-stream at a random point, 200 times."""
    with sqlite_database(tmp_path) as url:
        asyncio.run(upgrade(url))
        script = FakeScript(tokens=20, token_delay=0.0005, failure="disconnect", report_usage=True)
        server, _, key = start_gateway(script, usage_url=url, data_dir=tmp_path)
        received: dict[str, int] = {}
        rng = random.Random(7)
        headers = {"Authorization": f"Bearer {key}"}
        body = {**CHAT, "stream": True}
        with server, httpx.Client(timeout=10) as client:
            for _ in range(200):
                script.fail_after_tokens = rng.randint(1, 19)
                with client.stream(
                    "POST", f"{server.url}/v1/chat/completions", json=body, headers=headers
                ) as r:
                    tokens = 0
                    for line in r.iter_lines():
                        if line.startswith("data: {") and '"content":"' in line:
                            tokens += bool(
                                json.loads(line[6:])["choices"][0]["delta"].get("content")
                            )
                    received[r.headers["x-request-id"]] = tokens
        records = report(url)
    assert sorted(records) == sorted(received)
    for request_id, tokens in received.items():
        assert records[request_id]["completion_tokens"] == tokens
        assert records[request_id]["estimated"] is True
        assert records[request_id]["outcome"] == "upstream_error"

"""SIGTERM during open streams: not ready at once, every stream finishes, usage flushed, exit 0."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
from contextlib import closing
from pathlib import Path

import httpx
import openai

from support.processes import corral_up, free_port

STREAMS = 50


def config(tmp_path: Path) -> Path:
    path = tmp_path / "corral.yaml"
    path.write_text(
        f"""data_dir: {tmp_path / "data"}
server: {{port: {free_port()}, drain_grace: 1, drain_timeout: 30}}
logging: {{access_log: false}}
models:
  - name: fake-chat
    engine: {{kind: fake, tokens: 40, token_delay: 0.05}}
"""
    )
    return path


async def stream(client: openai.AsyncOpenAI) -> tuple[str, int]:
    async with client.chat.completions.with_streaming_response.create(
        model="fake-chat", messages=[{"role": "user", "content": "hi"}], stream=True
    ) as response:
        tokens = 0
        async for line in response.iter_lines():
            tokens += line.startswith("data: {") and '"content":"' in line
        return response.headers["x-request-id"], tokens


def test_sigterm_drains_open_streams_and_flushes_usage(tmp_path: Path) -> None:
    path = config(tmp_path)
    with corral_up(path) as corral:
        assert corral.key is not None

        async def scenario() -> list[tuple[str, int]]:
            async with openai.AsyncOpenAI(
                base_url=f"{corral.url}/v1", api_key=corral.key, max_retries=0
            ) as client:
                tasks = [asyncio.create_task(stream(client)) for _ in range(STREAMS)]
                await asyncio.sleep(0.5)  # every stream is open and part-way through
                corral.process.send_signal(signal.SIGTERM)
                await asyncio.sleep(0.2)
                async with httpx.AsyncClient() as probe:
                    ready = await probe.get(f"{corral.url}/readyz")
                assert ready.status_code == 503
                return await asyncio.gather(*tasks)

        results = asyncio.run(scenario())
        assert corral.process.wait(40) == 0
    assert [tokens for _, tokens in results] == [40] * STREAMS
    with closing(sqlite3.connect(tmp_path / "data" / "corral.db")) as db:
        rows = dict(db.execute("SELECT request_id, completion_tokens FROM usage_records"))
    assert {request_id for request_id, _ in results} <= set(rows)
    assert all(rows[request_id] == 40 for request_id, _ in results)


def test_streams_cut_by_the_drain_timeout_end_with_an_error_event_and_their_own_record(
    tmp_path: Path,
) -> None:
    path = tmp_path / "corral.yaml"
    path.write_text(
        f"""data_dir: {tmp_path / "data"}
server: {{port: {free_port()}, drain_grace: 0, drain_timeout: 1}}
logging: {{access_log: false}}
models:
  - name: fake-chat
    engine: {{kind: fake, tokens: 200, token_delay: 0.05}}
"""
    )
    with corral_up(path) as corral:
        assert corral.key is not None
        headers = {"Authorization": f"Bearer {corral.key}"}
        body = {
            "model": "fake-chat",
            "messages": [{"role": "user", "content": "hi"}],
            "stream": True,
        }

        async def scenario() -> list[tuple[str, list[str]]]:
            async with httpx.AsyncClient(base_url=corral.url, headers=headers, timeout=30) as http:

                async def one() -> tuple[str, list[str]]:
                    async with http.stream("POST", "/v1/chat/completions", json=body) as response:
                        return response.headers["x-request-id"], [
                            line async for line in response.aiter_lines() if line
                        ]

                tasks = [asyncio.create_task(one()) for _ in range(5)]
                await asyncio.sleep(0.5)
                corral.process.send_signal(signal.SIGTERM)
                return await asyncio.gather(*tasks)

        results = asyncio.run(scenario())
        assert corral.process.wait(10) == 0
    for _, lines in results:
        assert '"error"' in lines[-1]
        assert "shut down" in lines[-1]
        assert "data: [DONE]" not in lines
    assert "Exception in ASGI application" not in corral.text()
    with closing(sqlite3.connect(tmp_path / "data" / "corral.db")) as db:
        rows = list(db.execute("SELECT request_id, outcome, status FROM usage_records"))
    assert sorted(rows) == sorted((request_id, "shutdown", 503) for request_id, _ in results)

"""The FakeEngine remembers a bounded number of requests, so demos and benchmarks do not grow."""

from __future__ import annotations

import aiohttp

from corral.engines.fake import HISTORY, FakeEngine, FakeScript


async def test_the_request_history_is_bounded() -> None:
    engine = FakeEngine(FakeScript(tokens=1))
    await engine.start()
    try:
        async with aiohttp.ClientSession() as session:
            for i in range(HISTORY + 50):
                body = {"model": "m", "input": f"text {i}"}
                async with session.post(f"{engine.base_url}/embeddings", json=body) as response:
                    assert response.status == 200
    finally:
        await engine.stop()
    assert len(engine.state.requests) == HISTORY
    assert engine.state.requests[-1].body["input"] == f"text {HISTORY + 49}"

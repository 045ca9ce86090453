"""The FakeEngine keeps only its newest requests: `corral up` serves fake models with it for
as long as it runs, so what it remembers must not grow with every request."""

from __future__ import annotations

import aiohttp
import pytest

from corral.engines import fake
from corral.engines.fake import FakeEngine

BODY = {"model": "fake-model", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}


async def test_the_engine_remembers_only_its_newest_requests_and_counts_them_all(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(fake, "REMEMBERED", 3)
    engine = FakeEngine()
    await engine.start()
    try:
        async with aiohttp.ClientSession() as session:
            for n in range(5):
                body = {**BODY, "user": f"call-{n}"}
                async with session.post(f"{engine.base_url}/chat/completions", json=body) as r:
                    assert r.status == 200
    finally:
        await engine.stop()
    assert engine.state.received == 5
    assert [seen.body["user"] for seen in engine.state.requests] == ["call-2", "call-3", "call-4"]

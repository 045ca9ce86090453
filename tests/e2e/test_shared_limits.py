"""Two gateway processes share one Redis: a key's limit holds across both."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from support.processes import corral_up, free_port
from support.redis_keys import forget
from support.services import redis_url

pytestmark = pytest.mark.redis


def config(tmp_path: Path, name: str, prefix: str) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(
        f"""data_dir: {tmp_path / "data"}
server: {{port: {free_port()}, drain_grace: 0}}
logging: {{access_log: false}}
limits:
  redis_url: {redis_url()}
  redis_prefix: {prefix}
  key_defaults: {{rpm: 10}}
models:
  - name: fake-chat
    engine: {{kind: fake, tokens: 2}}
"""
    )
    return path


@pytest.fixture
def prefix() -> Iterator[str]:
    name = f"corral-test-{uuid.uuid4().hex[:8]}"
    yield name
    forget(name)


def test_rate_limit_is_shared_by_two_gateways(tmp_path: Path, prefix: str) -> None:
    with (
        corral_up(config(tmp_path, "a", prefix)) as a,
        corral_up(config(tmp_path, "b", prefix)) as b,
    ):
        assert a.key is not None
        assert b.key is None  # the store bootstrapped once; the second gateway shares it
        body = {"model": "fake-chat", "messages": [{"role": "user", "content": "hi"}]}
        headers = {"Authorization": f"Bearer {a.key}"}
        statuses = []
        with httpx.Client(timeout=10) as client:
            for i in range(20):
                url = (a.url if i % 2 == 0 else b.url) + "/v1/chat/completions"
                response = client.post(url, json=body, headers=headers)
                statuses.append(response.status_code)
                if response.status_code == 429:
                    assert response.json()["error"]["code"] == "rate_limit_exceeded"
                    assert int(response.headers["retry-after"]) >= 1
    assert statuses.count(200) == 10
    assert statuses.count(429) == 10

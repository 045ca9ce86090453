"""Cardinality: 1,000 keys and users add no per-key series; /metrics matches the catalogue."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from corral.observability.catalogue import build_catalogue
from corral.principals import Principal, Role, new_api_key
from support.gateway_harness import GatewayUnderTest, start_gateway

KEYS = 1_000
TEAMS = 7
SeriesId = tuple[str, tuple[tuple[str, str], ...]]
# Known and reported (issue 8): endpoint metrics carry the endpoint's base URL as a label value,
# which may embed credentials. Empty this set when they carry a host name or an index instead.
KNOWN_URL_LABELS: set[tuple[str, str]] = set()


@pytest.fixture
def gateway() -> Iterator[GatewayUnderTest]:
    server, engine, key = start_gateway()
    with server:
        under_test = GatewayUnderTest(server, engine, key)
        yield under_test
        under_test.close()


def _series(http: httpx.Client, gateway: GatewayUnderTest) -> dict[SeriesId, float]:
    text = http.get(gateway.server.metrics_url).text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _chat(http: httpx.Client, key: str, model: str = "fake-chat") -> int:
    response = http.post(
        "/v1/chat/completions",
        headers={"Authorization": f"Bearer {key}"},
        json={"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2},
    )
    return response.status_code


def test_a_thousand_keys_add_no_series(gateway: GatewayUnderTest) -> None:
    keys = gateway.platform.keys
    issued = []
    for i in range(KEYS):
        key = new_api_key()
        principal = Principal(
            key_id=f"key_{i:04d}",
            role=Role.DEVELOPER,
            team_id=f"team_{i % TEAMS}",
            user_id=f"user_{i:04d}@example.com",
        )
        keys.add(keys.hash(key), principal)
        issued.append(key)
    with httpx.Client(base_url=gateway.url, timeout=10) as http:
        # Warm up: one success, one unknown model, one bad key, so every kind of series exists.
        assert _chat(http, gateway.key) == 200
        assert _chat(http, gateway.key, model="missing") == 404
        assert _chat(http, "ck-unknown") == 401
        # Teams are a wanted, bounded label (cost and tokens by team): one request per team.
        assert [_chat(http, key) for key in issued[:TEAMS]] == [200] * TEAMS
        before = _series(http, gateway)
        started = time.monotonic()
        statuses = [_chat(http, key) for key in issued[TEAMS:]]
        elapsed = time.monotonic() - started
        after = _series(http, gateway)
    assert statuses == [200] * (KEYS - TEAMS)
    assert set(after) == set(before), "requests from new keys created new series"
    requests = (
        "corral_requests_total",
        (("kind", "chat/completions"), ("model", "fake-chat"), ("status_class", "2xx")),
    )
    assert after[requests] - before[requests] == KEYS - TEAMS
    values = {value for _, labels in after for _, value in labels}
    leaked = [v for v in values if v.startswith(("ck-", "key_", "user_")) or "@" in v]
    assert leaked == []
    urls = {(name, label) for name, labels in after for label, value in labels if "://" in value}
    assert urls == KNOWN_URL_LABELS
    print(f"{KEYS} keys, {KEYS - TEAMS} requests in {elapsed:.1f} s; {len(after)} series")


def test_everything_the_gateway_exports_is_in_the_catalogue(gateway: GatewayUnderTest) -> None:
    with httpx.Client(base_url=gateway.url, timeout=10) as http:
        assert _chat(http, gateway.key) == 200
        exported = {name for name, _ in _series(http, gateway)}
    catalogued = set(build_catalogue().series())
    assert exported - catalogued == set(), "add the metric set to corral.observability.catalogue"

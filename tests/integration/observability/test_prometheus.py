"""A real Prometheus scrapes a real gateway: its counters match the requests sent through it."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import yaml

from corral.observability.conformance import dashboard_queries, rule_queries
from corral.observability.promql import from_grafana
from support.gateway_harness import GatewayUnderTest, start_gateway

PROMETHEUS = shutil.which("prometheus")
SCRAPE_INTERVAL = "500ms"
_START_TIMEOUT = 30.0


@dataclass
class Prometheus:
    """A running Prometheus server and a client for its HTTP API."""

    url: str
    client: httpx.Client

    def query(self, promql: str) -> dict[str, Any]:
        """The ``data`` of an instant query; fails the test if Prometheus refuses it."""
        response = self.client.get("/api/v1/query", params={"query": promql})
        body = response.json()
        assert body["status"] == "success", f"{promql!r}: {body.get('error')}"
        data: dict[str, Any] = body["data"]
        return data

    def value(self, promql: str) -> float | None:
        """The single value of an instant vector query, or None when it is empty."""
        result = self.query(promql)["result"]
        if not result:
            return None
        assert len(result) == 1, result
        return float(result[0]["value"][1])

    def wait_for(self, promql: str, expected: float, timeout: float = 20.0) -> float | None:
        """Poll until ``promql`` equals ``expected`` (bounded); return the last value seen."""
        deadline = time.monotonic() + timeout
        value = self.value(promql)
        while value != expected and time.monotonic() < deadline:
            time.sleep(0.2)
            value = self.value(promql)
        return value

    def wait_for_data(self, promql: str, timeout: float = 20.0) -> list[Any]:
        """Poll until ``promql`` returns a non-empty result (bounded); return the last result."""
        deadline = time.monotonic() + timeout
        result: list[Any] = self.query(promql)["result"]
        while not result and time.monotonic() < deadline:
            time.sleep(0.2)
            result = self.query(promql)["result"]
        return result


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _write_config(directory: Path, job: str, target: str) -> Path:
    config = {
        "global": {"scrape_interval": SCRAPE_INTERVAL, "scrape_timeout": SCRAPE_INTERVAL},
        "scrape_configs": [{"job_name": job, "static_configs": [{"targets": [target]}]}],
    }
    path = directory / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    return path


def _wait_ready(process: subprocess.Popen[bytes], client: httpx.Client, log: Path) -> None:
    deadline = time.monotonic() + _START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"prometheus exited with {process.returncode}:\n{log.read_text()[-2000:]}")
        try:
            if client.get("/-/ready").status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    pytest.fail(f"prometheus was not ready within {_START_TIMEOUT:.0f} s:\n{log.read_text()}")


def start_prometheus(directory: Path, *, job: str, target: str) -> Iterator[Prometheus]:
    """Run Debian's prometheus scraping ``target`` (host:port), its data under ``directory``."""
    if PROMETHEUS is None:
        pytest.skip("Debian's prometheus binary is not installed: apt-get install -y prometheus")
    port = _free_port()
    log = directory / "prometheus.log"
    command = [
        PROMETHEUS,
        f"--config.file={_write_config(directory, job, target)}",
        f"--storage.tsdb.path={directory / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--storage.tsdb.retention.time=1h",
        "--log.level=warn",
    ]
    with (
        log.open("wb") as output,
        subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT) as process,
        httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5.0) as client,
    ):
        try:
            _wait_ready(process, client, log)
            yield Prometheus(f"http://127.0.0.1:{port}", client)
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


ROOT = Path(__file__).resolve().parents[3]
JOB = "corral-gateway"
CHATS, STREAMS, UNKNOWN_MODEL, BAD_KEY = 7, 5, 3, 2
_VARIABLES = {"$model": "fake-chat", "$served": ".*", "$host": ".*"}


@dataclass
class Sent:
    """What the test sent and what the SDK reported back."""

    prometheus: Prometheus
    prompt_tokens: int
    completion_tokens: int


def _send(gateway: GatewayUnderTest) -> tuple[int, int]:
    client = gateway.client()
    prompt = completion = 0
    for i in range(CHATS):
        reply = client.chat.completions.create(
            model="fake-chat",
            messages=[{"role": "user", "content": "count " * (i + 1)}],
            max_tokens=3 + i,
        )
        assert reply.usage is not None
        prompt, completion = (
            prompt + reply.usage.prompt_tokens,
            completion + reply.usage.completion_tokens,
        )
    for i in range(STREAMS):
        chunks = list(
            client.chat.completions.create(
                model="gpt-fake",
                messages=[{"role": "user", "content": "stream please " * (i + 1)}],
                max_tokens=2 + i,
                stream=True,
                stream_options={"include_usage": True},
            )
        )
        usage = chunks[-1].usage
        assert usage is not None
        prompt, completion = prompt + usage.prompt_tokens, completion + usage.completion_tokens
    for _ in range(UNKNOWN_MODEL):
        with pytest.raises(openai.NotFoundError):
            client.chat.completions.create(
                model="nope", messages=[{"role": "user", "content": "x"}]
            )
    stranger = gateway.client(key="ck-not-a-real-key")
    for _ in range(BAD_KEY):
        with pytest.raises(openai.AuthenticationError):
            stranger.chat.completions.create(model="fake-chat", messages=[])
    return prompt, completion


@pytest.fixture(scope="module")
def sent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sent]:
    server, engine, key = start_gateway()
    with server:
        gateway = GatewayUnderTest(server, engine, key)
        try:
            target = f"127.0.0.1:{server.metrics_port}"  # the metrics listener, not the API
            directory = tmp_path_factory.mktemp("prometheus")
            for prometheus in start_prometheus(directory, job=JOB, target=target):
                up = prometheus.wait_for(f'up{{job="{JOB}"}}', 1.0)
                assert up == 1.0, "Prometheus never scraped the gateway"
                prompt, completion = _send(gateway)
                yield Sent(prometheus, prompt, completion)
        finally:
            gateway.close()


def test_request_counters_match_what_was_sent(sent: Sent) -> None:
    prom = sent.prometheus
    ok = f'sum(corral_requests_total{{job="{JOB}", model="fake-chat", status_class="2xx"}})'
    assert prom.wait_for(ok, CHATS + STREAMS) == CHATS + STREAMS
    refused = f'sum(corral_requests_total{{job="{JOB}", model="-", status_class="4xx"}})'
    assert prom.wait_for(refused, UNKNOWN_MODEL + BAD_KEY) == UNKNOWN_MODEL + BAD_KEY
    by_kind = prom.query(f'sum by (kind) (corral_requests_total{{job="{JOB}", model="fake-chat"}})')
    assert {r["metric"]["kind"]: float(r["value"][1]) for r in by_kind["result"]} == {
        "chat/completions": CHATS + STREAMS
    }
    errors = f'sum(corral_request_errors_total{{job="{JOB}"}})'
    assert prom.value(errors) is None, "no request to a known model failed"


def test_token_counters_match_the_usage_the_sdk_reported(sent: Sent) -> None:
    prom = sent.prometheus
    tokens = 'sum(corral_tokens_total{{job="{}", model="fake-chat", direction="{}"}})'
    assert sent.prompt_tokens > 0
    assert sent.completion_tokens > 0
    assert prom.wait_for(tokens.format(JOB, "input"), sent.prompt_tokens) == sent.prompt_tokens
    assert (
        prom.wait_for(tokens.format(JOB, "output"), sent.completion_tokens)
        == sent.completion_tokens
    )
    print(
        f"Prometheus: {CHATS + STREAMS} answered, {UNKNOWN_MODEL + BAD_KEY} refused, "
        f"{sent.prompt_tokens} input and {sent.completion_tokens} output tokens"
    )


def test_latency_histograms_count_every_answered_request(sent: Sent) -> None:
    prom = sent.prometheus
    for histogram in ("corral_request_duration_seconds", "corral_time_to_first_token_seconds"):
        count = f'sum({histogram}_count{{job="{JOB}", model="fake-chat"}})'
        assert prom.wait_for(count, CHATS + STREAMS) == CHATS + STREAMS
        inf = f'sum({histogram}_bucket{{job="{JOB}", model="fake-chat", le="+Inf"}})'
        assert prom.value(inf) == CHATS + STREAMS
    # Over the counters since start: every request came in between two scrapes, so a rate()
    # window could hold a single sample.
    p99 = prom.value(
        "histogram_quantile(0.99, sum by (le) "
        '(corral_time_to_first_token_seconds_bucket{model="fake-chat"}))'
    )
    assert p99 is not None
    assert 0 < p99 <= 30


def _as_prometheus_query(expr: str) -> str:
    for variable, value in _VARIABLES.items():
        expr = expr.replace(variable, value)
    return expr


def test_every_dashboard_and_alert_query_runs_on_real_prometheus(sent: Sent) -> None:
    prom = sent.prometheus
    queries = [
        q
        for p in sorted((ROOT / "deploy" / "grafana").glob("*.json"))
        for q in dashboard_queries(p)
    ]
    queries += rule_queries(ROOT / "deploy" / "prometheus" / "alerts.yaml")
    for query in queries:
        prom.query(_as_prometheus_query(query.expr))
    # The overview's traffic panels show this gateway's traffic (once rate() has two samples).
    overview = json.loads((ROOT / "deploy" / "grafana" / "platform-overview.json").read_text())
    by_title = {p["title"]: p for p in overview["panels"] if p.get("targets")}
    for title in ("Requests/s by model", "Tokens/s by model and direction", "In flight"):
        expr = _as_prometheus_query(from_grafana(by_title[title]["targets"][0]["expr"]))
        assert prom.wait_for_data(expr), f"panel {title!r} shows no data"


def test_prometheus_reports_no_scrape_errors(sent: Sent) -> None:
    targets = sent.prometheus.client.get("/api/v1/targets").json()["data"]["activeTargets"]
    [target] = targets
    assert target["health"] == "up", target["lastError"]
    assert target["labels"]["job"] == JOB
    assert isinstance(httpx.URL(target["scrapeUrl"]).port, int)

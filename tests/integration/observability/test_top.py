"""`corral top --once` against a running gateway, and what it says when there is none."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
from typer.testing import CliRunner

from corral.cli.top import app
from support.gateway_harness import GatewayUnderTest, start_gateway


@pytest.fixture
def gateway() -> Iterator[GatewayUnderTest]:
    server, engine, key = start_gateway()
    with server:
        under_test = GatewayUnderTest(server, engine, key)
        yield under_test
        under_test.close()


def test_once_prints_one_frame_of_a_running_gateway(gateway: GatewayUnderTest) -> None:
    client = gateway.client()
    for _ in range(3):
        client.chat.completions.create(
            model="fake-chat", messages=[{"role": "user", "content": "hello there"}]
        )
    result = CliRunner().invoke(
        app,
        ["--once", "--url", gateway.server.metrics_url, "--interval", "0.2"],
        env={"COLUMNS": "160"},
    )
    assert result.exit_code == 0, result.output
    assert "fake-chat" in result.output
    assert gateway.server.metrics_url in result.output
    [row] = [line for line in result.output.splitlines() if "fake-chat" in line]
    assert " 3 " in row, "three requests since start"
    assert "ms" in row, "TTFT percentiles"
    assert "no health agent metrics" in result.output


def test_an_unreachable_corral_is_reported_with_what_to_do() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = CliRunner().invoke(app, ["--once", "--url", f"http://127.0.0.1:{port}/metrics"])
    assert result.exit_code == 1
    assert "Could not reach" in result.output
    assert "corral up" in result.output


def test_a_non_http_url_is_refused() -> None:
    result = CliRunner().invoke(app, ["--once", "--url", "file:///etc/passwd"])
    assert result.exit_code == 1
    assert "use an http:// or https:// URL" in result.output

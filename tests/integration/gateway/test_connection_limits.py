"""Unauthenticated abuse of the HTTP server: huge heads, half-sent requests, too many sockets."""

from __future__ import annotations

import select
import socket
import time
from collections.abc import Iterator

import orjson
import pytest

from corral.composition.serving import ServerThread
from corral.settings import ConnectionLimits
from support.abuse import (
    half_sent,
    read_response,
    read_status,
    readyz,
    send_huge_header,
    watch,
)
from support.gateway_harness import start_gateway

LIMITS = ConnectionLimits(
    max_header_bytes=16 * 1024,
    max_headers=20,
    max_url_bytes=1024,
    header_timeout=2.0,
    body_timeout=1.0,
    keep_alive_timeout=1,
    max_connections=120,
    max_connections_per_client=40,
)
MB = 1 << 20


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[ServerThread, str]]:
    thread, _, key = start_gateway(limits=LIMITS)
    with thread:
        yield thread, key


@pytest.fixture(scope="module")
def server(served: tuple[ServerThread, str]) -> ServerThread:
    return served[0]


def _request(port: int, raw: bytes) -> tuple[int, dict[str, object]]:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(raw)
        response = read_response(sock)
    head, _, body = response.partition(b"\r\n\r\n")
    return int(head[9:12]), orjson.loads(body)


def test_a_64_mb_header_without_a_key_is_cut_early_and_memory_stays_bounded(
    server: ServerThread,
) -> None:
    with watch() as rss:
        sent, status = send_huge_header(server.port, 64 * MB)
    # The server stops reading at the limit: the client could not push the 64 MB through.
    assert sent < 16 * MB
    assert status in (431, None)  # None: the reset overtook the answer on the client side
    assert rss.growth < 24 * MB, f"RSS grew by {rss.growth / MB:.0f} MB"
    assert readyz(server.url) == 200


def test_a_head_over_the_limit_gets_431_in_openai_envelope(server: ServerThread) -> None:
    filler = b"X-Filler: " + b"a" * (20 * 1024) + b"\r\n"
    status, body = _request(
        server.port, b"GET /v1/models HTTP/1.1\r\nHost: c\r\n" + filler + b"\r\n"
    )
    assert status == 431
    assert body["error"]["type"] == "invalid_request_error"  # type: ignore[index]


def test_too_many_headers_get_431(server: ServerThread) -> None:
    headers = b"".join(b"X-H%d: v\r\n" % i for i in range(25))
    status, body = _request(server.port, b"GET /readyz HTTP/1.1\r\nHost: c\r\n" + headers + b"\r\n")
    assert status == 431
    assert "headers" in body["error"]["message"]  # type: ignore[index]


def test_a_long_url_gets_414(server: ServerThread) -> None:
    status, _ = _request(server.port, b"GET /" + b"a" * 2000 + b" HTTP/1.1\r\nHost: c\r\n\r\n")
    assert status == 414


def test_half_sent_requests_are_capped_per_client_cut_after_the_header_timeout(
    server: ServerThread,
) -> None:
    sockets = half_sent(server.port, 100)
    try:
        time.sleep(0.3)
        answered, _, _ = select.select(sockets, [], [], 0)
        # Past the per-address cap: refused at once with 503; the others wait for their heads.
        assert set(answered) == set(sockets[40:])
        assert {read_status(s) for s in answered} == {503}
        assert readyz(server.url) == 200  # another address is still served
        time.sleep(LIMITS.header_timeout + 0.5)
        assert {read_status(s, timeout=1) for s in sockets[:40]} == {408}
    finally:
        for sock in sockets:
            sock.close()
    assert readyz(server.url) == 200


def test_connections_past_the_total_cap_get_503(server: ServerThread) -> None:
    sockets = [half_sent(server.port, 1, source=f"127.0.1.{i}")[0] for i in range(1, 131)]
    try:
        time.sleep(0.3)
        answered, _, _ = select.select(sockets, [], [], 0)
        # The module's server holds a few connections of its own (the test's /readyz calls
        # are closed, but the count is per process): at least the last ten are refused.
        assert set(sockets[-10:]) <= set(answered)
        assert {read_status(s) for s in answered} == {503}
    finally:
        for sock in sockets:
            sock.close()
    time.sleep(0.2)
    assert readyz(server.url) == 200


def test_a_slow_body_is_cut_after_the_body_timeout(served: tuple[ServerThread, str]) -> None:
    server, key = served
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: c\r\nContent-Length: 100\r\n"
            b"Authorization: Bearer " + key.encode() + b"\r\n\r\n{"
        )
        started = time.monotonic()
        read_response(sock, timeout=LIMITS.body_timeout + 3)
        assert time.monotonic() - started < LIMITS.body_timeout + 2


def test_an_idle_keep_alive_connection_is_closed(server: ServerThread) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(b"GET /readyz HTTP/1.1\r\nHost: c\r\n\r\n")
        started = time.monotonic()
        response = read_response(sock, timeout=LIMITS.keep_alive_timeout + 3)
        assert response.startswith(b"HTTP/1.1 200")
        assert time.monotonic() - started < LIMITS.keep_alive_timeout + 2

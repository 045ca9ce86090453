"""Streams relayed byte for byte, cancelled on disconnect, and ended cleanly on engine failures."""

from __future__ import annotations

import json
import socket
import time

import httpx
import openai
import pytest

from corral.catalog import Timeouts
from corral.engines.fake import FakeScript
from support.gateway_harness import GatewayUnderTest, start_gateway

CHAT = {"model": "fake-chat", "messages": [{"role": "user", "content": "hello there"}]}


def _raw_stream(url: str, key: str | None, body: dict[str, object]) -> bytes:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    with httpx.stream("POST", url, json=body, headers=headers, timeout=10) as response:
        assert response.status_code == 200
        return b"".join(response.iter_raw())


def _events(raw: bytes) -> list[bytes]:
    return [e for e in raw.split(b"\n\n") if e]


def test_stream_is_byte_identical_when_usage_was_asked(gateway: GatewayUnderTest) -> None:
    body = {**CHAT, "stream": True, "stream_options": {"include_usage": True}}
    direct = _raw_stream(f"{gateway.engine.base_url}/chat/completions", None, body)
    relayed = _raw_stream(f"{gateway.url}/v1/chat/completions", gateway.key, body)
    # "created" is a timestamp: equal unless the second ticked over between the two calls.
    assert relayed == direct or _drop_created(relayed) == _drop_created(direct)


def test_stream_is_identical_apart_from_the_usage_chunk(gateway: GatewayUnderTest) -> None:
    asked = {**CHAT, "stream": True, "stream_options": {"include_usage": True}}
    direct = _events(_raw_stream(f"{gateway.engine.base_url}/chat/completions", None, asked))
    relayed = _events(
        _raw_stream(f"{gateway.url}/v1/chat/completions", gateway.key, {**CHAT, "stream": True})
    )
    usage_events = [e for e in direct if b'"usage"' in e]
    assert len(usage_events) == 1
    expected = [e for e in direct if e not in usage_events]
    assert [_drop_created(e) for e in relayed] == [_drop_created(e) for e in expected]
    assert relayed[-1] == b"data: [DONE]"


def _drop_created(raw: bytes) -> bytes:
    out = []
    for event in raw.split(b"\n\n"):
        if event.startswith(b"data: {"):
            payload = json.loads(event[6:])
            payload.pop("created", None)
            out.append(b"data: " + json.dumps(payload).encode())
        else:
            out.append(event)
    return b"\n\n".join(out)


def test_client_disconnect_cancels_the_upstream_promptly() -> None:
    server, engine, key = start_gateway(FakeScript(tokens=1000, token_delay=0.05))
    with server:
        body = json.dumps({**CHAT, "stream": True}).encode()
        request = (
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + f"Authorization: Bearer {key}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        with socket.create_connection(("127.0.0.1", server.port)) as sock:
            sock.sendall(request)
            assert b"200 OK" in sock.recv(65536)
        closed_at = time.monotonic()
        deadline = closed_at + 5
        while time.monotonic() < deadline and engine.state.requests[-1].outcome == "open":
            time.sleep(0.01)
        seen = engine.state.requests[-1]
        assert seen.outcome == "client_gone"
        assert seen.ended is not None
        assert time.monotonic() - closed_at < 1.0


def test_engine_that_never_answers_gives_504() -> None:
    server, _, key = start_gateway(
        FakeScript(failure="stall"), timeouts=Timeouts(first_byte=0.3, idle=0.3)
    )
    with server, openai.OpenAI(base_url=f"{server.url}/v1", api_key=key, max_retries=0) as client:
        with pytest.raises(openai.APIStatusError) as info:
            client.chat.completions.create(**CHAT)  # type: ignore[call-overload]
        assert info.value.status_code == 504
        with pytest.raises(openai.APIStatusError) as info:
            client.chat.completions.create(**CHAT, stream=True)  # type: ignore[call-overload]
        assert info.value.status_code == 504


def test_engine_dying_mid_stream_ends_with_an_error_event() -> None:
    server, _, key = start_gateway(
        FakeScript(tokens=10, token_delay=0.001, failure="disconnect", fail_after_tokens=4)
    )
    with server:
        raw = _raw_stream(f"{server.url}/v1/chat/completions", key, {**CHAT, "stream": True})
    events = _events(raw)
    error = json.loads(events[-1][6:])
    assert error["error"]["code"] == "upstream_error"
    assert sum(b'"content":"' in e for e in events) == 4


def test_engine_stalling_mid_stream_ends_with_a_timeout_event() -> None:
    server, _, key = start_gateway(
        FakeScript(tokens=10, failure="stall", fail_after_tokens=3, token_delay=0.001),
        timeouts=Timeouts(first_byte=5, idle=0.3),
    )
    with server:
        raw = _raw_stream(f"{server.url}/v1/chat/completions", key, {**CHAT, "stream": True})
    assert json.loads(_events(raw)[-1][6:])["error"]["code"] == "upstream_timeout"

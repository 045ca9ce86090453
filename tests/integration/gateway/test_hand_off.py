"""The durable hand-off: a request's record reaches the meters (the ledger's journal) before the
last byte of its answer is sent; a request cut by the drain ends with an error and its own
record."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import orjson
import pytest

from corral.engines.fake import FakeScript
from corral.gateway.metering import Settlement, UsageEvent
from support.gateway_harness import start_gateway


class OrderLog:
    """A meter and an ASGI ``send`` writing into one list, so their order shows."""

    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []
        self.records: list[UsageEvent] = []

    def record(self, event: UsageEvent, settlement: Settlement | None = None) -> None:
        del settlement
        self.records.append(event)
        self.events.append(("record", event.request_id))

    async def send(self, message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            self.events.append(("start", message["status"]))
        else:
            more = message.get("more_body", False)
            self.events.append(("body" if more else "last", bytes(message.get("body", b""))))


def chat_scope(key: str, body: bytes) -> tuple[dict[str, Any], Any]:
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/v1/chat/completions",
        "headers": [
            (b"authorization", f"Bearer {key}".encode()),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ],
    }
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.Event().wait()  # the client stays connected
        raise AssertionError("unreachable")

    return scope, receive


@pytest.mark.parametrize("stream", [False, True])
def test_the_record_is_handed_off_before_the_last_byte(tmp_path: Path, stream: bool) -> None:
    log = OrderLog()
    server, _, key = start_gateway(FakeScript(tokens=5), data_dir=tmp_path, meters=(log,))
    body = orjson.dumps(
        {"model": "fake-chat", "messages": [{"role": "user", "content": "hi"}], "stream": stream}
    )
    with server:
        scope, receive = chat_scope(key, body)
        assert server.platform is not None
        server.run(server.platform.app(scope, receive, log.send))
    kinds = [kind for kind, _ in log.events]
    assert kinds.count("record") == 1
    assert kinds.count("last") == 1
    assert kinds.index("record") < kinds.index("last")
    assert log.records[0].completion_tokens == 5
    assert log.records[0].outcome == "ok"
    assert log.records[0].endpoint.startswith("http://127.0.0.1:")  # where it was served


def test_a_stream_cut_by_the_drain_ends_with_an_error_event_and_its_own_record(
    tmp_path: Path,
) -> None:
    log = OrderLog()
    server, _, key = start_gateway(
        FakeScript(tokens=100, token_delay=0.05), data_dir=tmp_path, meters=(log,)
    )
    body = orjson.dumps(
        {"model": "fake-chat", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    )
    with server:
        platform = server.platform
        assert platform is not None
        scope, receive = chat_scope(key, body)

        async def cut_mid_stream() -> int:
            call = asyncio.create_task(platform.app(scope, receive, log.send))
            await asyncio.sleep(0.5)
            cut = platform.gateway.cut_open_requests()
            await call  # returns normally: no exception for uvicorn to log
            return cut

        assert server.run(cut_mid_stream()) == 1
    kinds = [kind for kind, _ in log.events]
    assert kinds[0] == "start"
    assert kinds[-1] == "last"
    last = log.events[-1][1]
    assert last.startswith(b"data: ")
    assert orjson.loads(last[6:])["error"]["code"] == "overloaded"
    (record,) = log.records
    assert (record.outcome, record.status) == ("shutdown", 503)
    assert 0 < record.completion_tokens < 100
    assert record.estimated

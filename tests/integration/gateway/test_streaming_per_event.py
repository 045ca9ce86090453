"""Streams from an engine that writes one HTTP chunk per SSE event (as vLLM does): relayed
byte for byte, usage read and stripped, the idle limit kept, and what arrived together sent on
together."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import httptools
import httpx
import pytest

from corral.catalog import Timeouts
from corral.engines.fake import FakeEngine, FakeScript
from corral.gateway.transport import Target, UpstreamPool
from corral.store.migrate import upgrade
from corral.store.usage import SqlUsage, UsageFilter
from support.databases import sqlite_database
from support.gateway_harness import start_gateway

CHAT = {"model": "fake-chat", "messages": [{"role": "user", "content": "hello there"}]}
STREAM = {**CHAT, "stream": True, "max_tokens": 5}


class _Chunks:
    """httptools callbacks: the body of each HTTP chunk of one response."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self._current = b""
        self.done = False

    def on_body(self, body: bytes) -> None:
        self._current += body

    def on_chunk_complete(self) -> None:
        if self._current:
            self.chunks.append(self._current)
        self._current = b""

    def on_message_complete(self) -> None:
        self.done = True


async def _http_chunks(engine: FakeEngine) -> list[bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", engine.port)
    body = json.dumps(STREAM).encode()
    writer.write(
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
    )
    seen = _Chunks()
    parser = httptools.HttpResponseParser(seen)
    while not seen.done:
        parser.feed_data(await reader.read(65536))
    writer.close()
    return seen.chunks


@pytest.mark.parametrize("per_event", [True, False])
async def test_fake_engine_sends_one_http_chunk_per_event_when_asked(per_event: bool) -> None:
    engine = FakeEngine(FakeScript(chunk_per_event=per_event), model="fake-chat")
    await engine.start()
    try:
        chunks = await _http_chunks(engine)
    finally:
        await engine.stop()
    events = b"".join(chunks).split(b"\n\n")[:-1]
    assert len(events) == 5 + 3  # role, five tokens, finish, [DONE]
    if per_event:
        assert chunks == [e + b"\n\n" for e in events]
    else:
        assert len(chunks) == 1


def _raw(url: str, key: str | None, body: dict[str, object]) -> bytes:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    with httpx.stream("POST", url, json=body, headers=headers, timeout=10) as response:
        assert response.status_code == 200
        return b"".join(response.iter_raw())


def _without_created(raw: bytes) -> list[object]:
    out: list[object] = []
    for event in raw.split(b"\n\n")[:-1]:
        if event.startswith(b"data: {"):
            payload = json.loads(event[6:])
            payload.pop("created")
            out.append(payload)
        else:
            out.append(event)
    return out


def _usage_totals(url: str) -> dict[str, object]:
    async def read() -> list[dict[str, object]]:
        usage = SqlUsage(url)
        try:
            return await usage.report(UsageFilter(since=0), ["key"])
        finally:
            await usage.close()

    (row,) = asyncio.run(read())
    return row


@pytest.mark.parametrize(
    "script",
    [
        FakeScript(chunk_per_event=True),
        FakeScript(chunk_per_event=True, time_to_first_token=0.01, token_delay=0.002),
    ],
    ids=["at-once", "paced"],
)
def test_per_event_streams_are_relayed_byte_for_byte_and_metered(
    script: FakeScript, tmp_path: Path
) -> None:
    with sqlite_database(tmp_path) as url:
        asyncio.run(upgrade(url))
        server, engine, key = start_gateway(script, usage_url=url, data_dir=tmp_path)
        asked = {**STREAM, "stream_options": {"include_usage": True}}
        with server:
            direct = _raw(f"{engine.base_url}/chat/completions", None, asked)
            relayed = _raw(f"{server.url}/v1/chat/completions", key, asked)
            stripped = _raw(f"{server.url}/v1/chat/completions", key, STREAM)
        totals = _usage_totals(url)
    assert relayed == direct or _without_created(relayed) == _without_created(direct)
    usage = [e for e in direct.split(b"\n\n") if b'"usage"' in e]
    assert len(usage) == 1
    assert _without_created(stripped) == _without_created(direct.replace(usage[0] + b"\n\n", b""))
    # One record per relayed stream, with the engine's own counts (two prompt words each).
    assert totals["requests"] == 2
    assert (totals["prompt_tokens"], totals["completion_tokens"]) == (4, 10)


def test_idle_limit_still_ends_a_per_event_stream_that_stalls() -> None:
    server, _, key = start_gateway(
        FakeScript(chunk_per_event=True, failure="stall", fail_after_tokens=2, token_delay=0.001),
        timeouts=Timeouts(first_byte=5, idle=0.3),
    )
    with server:
        raw = _raw(f"{server.url}/v1/chat/completions", key, STREAM)
    events = raw.split(b"\n\n")[:-1]
    assert json.loads(events[-1][6:])["error"]["code"] == "upstream_timeout"
    assert sum(b'"content":"' in e for e in events) == 2


Answer = Callable[[asyncio.StreamWriter], Awaitable[None]]


@asynccontextmanager
async def _engine(answer: Answer) -> AsyncIterator[Target]:
    """A one-route HTTP server on loopback that answers every request with ``answer``."""
    writers: list[asyncio.StreamWriter] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        await reader.readuntil(b"\r\n\r\n")
        await reader.readexactly(2)  # the body, b"{}"
        await answer(writer)

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield Target.parse(f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/v1")
    finally:
        for writer in writers:
            writer.close()
        server.close()
        await server.wait_closed()
        await asyncio.sleep(0.01)


async def test_pieces_read_together_are_handed_on_as_one() -> None:
    """Four HTTP chunks written at once come out of the transport as one piece, not four."""
    pieces = [b"data: %d\n\n" % i for i in range(4)]

    async def answer(writer: asyncio.StreamWriter) -> None:
        framed = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + framed)
        await asyncio.sleep(0.05)  # the head and the events arrive before anyone reads them
        writer.write(b"0\r\n\r\n")

    pool = UpstreamPool()
    async with _engine(answer) as target:
        response = await pool.post(target, b"/x", b"", b"{}", connect_timeout=2, read_timeout=2)
        await asyncio.sleep(0.02)
        got = [piece async for piece in response.chunks()]
        response.close()
        await pool.close()
    assert got == [b"".join(pieces)]


async def test_a_shorter_read_timeout_applies_from_when_it_is_set() -> None:
    async def answer(writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n9\r\ndata: 1\n\n\r\n")

    pool = UpstreamPool()
    loop = asyncio.get_running_loop()
    async with _engine(answer) as target:
        response = await pool.post(target, b"/x", b"", b"{}", connect_timeout=2, read_timeout=4)
        chunks = response.chunks()
        assert await anext(chunks) == b"data: 1\n\n"
        response.set_read_timeout(0.2)
        started = loop.time()
        with pytest.raises(TimeoutError):
            await anext(chunks)
        assert loop.time() - started < 1
        response.close()
        await pool.close()

"""The SSE scanner finds usage without decoding ordinary events and strips it on request."""

from __future__ import annotations

import orjson

from corral.engines import wire
from corral.gateway.sse import StreamScanner


def stream(with_usage: bool = True) -> bytes:
    events = [wire.sse(wire.chat_chunk("c", 1, "m", role="assistant"))]
    events += [wire.sse(wire.chat_chunk("c", 1, "m", content=t)) for t in ("a", "b", "c")]
    events.append(wire.sse(wire.chat_chunk("c", 1, "m", finish_reason="stop")))
    if with_usage:
        events.append(wire.sse(wire.usage_chunk("c", 1, "m", obj="x", prompt=7, completion=3)))
    events.append(wire.DONE)
    return b"".join(events)


def feed_in_pieces(scanner: StreamScanner, raw: bytes, size: int) -> bytes:
    out = b"".join(scanner.feed(raw[i : i + size]) for i in range(0, len(raw), size))
    return out + scanner.finish()


def test_usage_is_read_and_kept_when_the_client_asked() -> None:
    raw = stream()
    for size in (1, 7, 64, len(raw)):
        scanner = StreamScanner(strip_usage=False)
        assert feed_in_pieces(scanner, raw, size) == raw
        assert scanner.usage == {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}


def test_usage_chunk_is_stripped_when_the_client_did_not_ask() -> None:
    for size in (1, 13, 4096):
        scanner = StreamScanner(strip_usage=True)
        out = feed_in_pieces(scanner, stream(), size)
        assert out == stream(with_usage=False)
        assert scanner.usage is not None
        assert scanner.usage["completion_tokens"] == 3


def test_text_events_are_counted_for_estimates() -> None:
    scanner = StreamScanner(strip_usage=True)
    scanner.feed(stream(with_usage=False))
    assert scanner.usage is None
    assert scanner.tokens_seen == 3


def test_usage_null_in_every_chunk_is_not_decoded_as_usage() -> None:
    chunk = wire.chat_chunk("c", 1, "m", content="x")
    chunk["usage"] = None
    scanner = StreamScanner(strip_usage=True)
    raw = wire.sse(chunk)
    assert scanner.feed(raw) == raw
    assert scanner.usage is None
    assert orjson.loads(raw[6:])["usage"] is None

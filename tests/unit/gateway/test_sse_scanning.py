"""The SSE scanner decodes only events that hold usage, and passes the rest on untouched."""

from __future__ import annotations

from typing import Any

import pytest

from corral.engines import wire
from corral.gateway import sse
from corral.gateway.sse import StreamScanner


def _events(count: int) -> list[bytes]:
    return [wire.sse(wire.chat_chunk("c", 1, "m", content=f"t{i}")) for i in range(count)]


def _usage() -> bytes:
    return wire.sse(wire.usage_chunk("c", 1, "m", obj="x", prompt=7, completion=3))


@pytest.fixture
def decoded(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    seen: list[bytes] = []
    real = sse._event_json

    def counting(event: bytes) -> dict[str, Any] | None:
        seen.append(event)
        return real(event)

    monkeypatch.setattr(sse, "_event_json", counting)
    return seen


def test_a_block_without_usage_is_the_same_object_and_decodes_nothing(
    decoded: list[bytes],
) -> None:
    block = b"".join(_events(16))
    scanner = StreamScanner(strip_usage=True)
    assert scanner.feed(block) is block
    assert decoded == []
    assert scanner.tokens_seen == 16


@pytest.mark.parametrize("strip", [True, False])
def test_only_the_usage_event_of_a_block_is_decoded(strip: bool, decoded: list[bytes]) -> None:
    before, after = b"".join(_events(8)), b"".join(_events(3)) + wire.DONE
    scanner = StreamScanner(strip_usage=strip)
    out = scanner.feed(before + _usage() + after)
    assert out == (before + after if strip else before + _usage() + after)
    assert decoded == [_usage()]
    assert scanner.usage == {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}


def test_usage_inside_an_event_with_choices_is_read_but_kept(decoded: list[bytes]) -> None:
    chunk = wire.chat_chunk("c", 1, "m", content="x")
    chunk["usage"] = {"prompt_tokens": 2, "completion_tokens": 1, "total_tokens": 3}
    block = b"".join(_events(2)) + wire.sse(chunk) + wire.DONE
    scanner = StreamScanner(strip_usage=True)
    assert scanner.feed(block) == block
    assert scanner.usage is not None
    assert scanner.usage["completion_tokens"] == 1
    assert len(decoded) == 1

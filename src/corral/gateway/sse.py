"""Scans a relayed SSE stream for usage without decoding every event, and strips what must go."""

from __future__ import annotations

import re
from typing import Any

import orjson

_USAGE = re.compile(rb'"usage"\s*:\s*\{')
_EVENT_END = b"\n\n"


class StreamScanner:
    """Fed upstream bytes, returns the bytes to send on, cut at event boundaries.

    Only a block that holds a usage object is split into events and decoded; every other block
    is passed on as the same bytes it arrived as. ``tokens_seen`` counts events that carried
    generated text, the estimate used when the upstream never reports usage.
    """

    __slots__ = ("_carry", "_strip_usage", "tokens_seen", "usage")

    def __init__(self, *, strip_usage: bool) -> None:
        self._carry = b""
        self._strip_usage = strip_usage
        self.usage: dict[str, Any] | None = None
        self.tokens_seen = 0

    def feed(self, chunk: bytes) -> bytes:
        """The complete events so far (possibly empty); a partial event waits for the next chunk."""
        data = self._carry + chunk if self._carry else chunk
        cut = data.rfind(_EVENT_END)
        if cut < 0:
            self._carry = data
            return b""
        cut += len(_EVENT_END)
        block, self._carry = data[:cut], data[cut:]
        self.tokens_seen += _count_text_events(block)
        if _USAGE.search(block) is not None:
            block = self._take_usage(block)
        return block

    def finish(self) -> bytes:
        """Whatever is left when the upstream ends (normally nothing)."""
        rest, self._carry = self._carry, b""
        return rest

    def _take_usage(self, block: bytes) -> bytes:
        kept: list[bytes] = []
        for event in block.split(_EVENT_END)[:-1]:
            payload = _event_json(event) if _USAGE.search(event) else None
            usage = payload.get("usage") if payload is not None else None
            if isinstance(usage, dict):
                self.usage = usage
                if self._strip_usage and payload is not None and not payload.get("choices"):
                    continue
            kept.append(event + _EVENT_END)
        return b"".join(kept)


def _count_text_events(block: bytes) -> int:
    return (
        block.count(b'"content":"')
        - block.count(b'"content":""')
        + block.count(b'"text":"')
        - block.count(b'"text":""')
    )


def _event_json(event: bytes) -> dict[str, Any] | None:
    for line in event.split(b"\n"):
        if line.startswith(b"data:"):
            try:
                value = orjson.loads(line[5:])
            except orjson.JSONDecodeError:
                return None
            return value if isinstance(value, dict) else None
    return None

"""Scans a relayed SSE stream for usage without decoding every event, and strips what must go."""

from __future__ import annotations

import re
from typing import Any

import orjson

_USAGE = re.compile(rb'"usage"\s*:\s*\{')
_EVENT_END = b"\n\n"


class StreamScanner:
    """Fed upstream bytes, returns the bytes to send on, cut at event boundaries.

    Events are found by scanning bytes: only an event whose bytes hold a usage object is
    decoded, and a block without one is passed on as the very bytes object it arrived as (no
    copy, no re-framing). ``tokens_seen`` counts events that carried generated text, the
    estimate used when the upstream never reports usage.
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
        """Reads each usage object in ``block``, decoding only the events that hold one, and
        cuts usage-only events out when stripping; every other byte stays as it came."""
        kept: list[bytes] = []
        copied = 0  # block[:copied] is in ``kept`` already
        scanned = 0  # the end of the last event decoded
        for match in _USAGE.finditer(block):
            if match.start() < scanned:
                continue  # a second "usage" key inside an event already decoded
            begin = block.rfind(_EVENT_END, 0, match.start())
            begin = 0 if begin < 0 else begin + len(_EVENT_END)
            scanned = block.index(_EVENT_END, match.end()) + len(_EVENT_END)
            payload = _event_json(block[begin:scanned])
            usage = payload.get("usage") if payload is not None else None
            if not isinstance(usage, dict):
                continue
            self.usage = usage
            if self._strip_usage and payload is not None and not payload.get("choices"):
                kept.append(block[copied:begin])
                copied = scanned
        if not copied:
            return block
        kept.append(block[copied:])
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

"""JSON bodies parsed with one nesting limit, so no later walk or re-serialisation can overflow.

orjson refuses to write past 254 levels and the standard library recurses once per level: a
body nested deeper than either must be refused where it enters, as the client's mistake (400),
not found later as a RecursionError (500).
"""

from __future__ import annotations

from typing import Any

import orjson

from corral.errors import InvalidRequest

MAX_DEPTH = 64
"""Deepest nesting of arrays and objects accepted in any request body (real calls use < 10)."""


def depth_exceeds(value: Any, limit: int = MAX_DEPTH) -> bool:
    """Whether ``value`` (parsed JSON) nests arrays and objects more than ``limit`` deep."""
    if not isinstance(value, dict | list):
        return False
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        children = node.values() if isinstance(node, dict) else node
        for child in children:
            if isinstance(child, dict | list):
                if depth + 1 > limit:
                    return True
                stack.append((child, depth + 1))
    return False


def check_depth(value: Any, raw: bytes, limit: int = MAX_DEPTH) -> None:
    """InvalidRequest when ``value``, parsed from ``raw``, nests more than ``limit`` deep."""
    # Fewer brackets in the bytes than the limit cannot nest deeper: most bodies stop here.
    if raw.count(b"[") + raw.count(b"{") <= limit:
        return
    if depth_exceeds(value, limit):
        raise InvalidRequest(
            f"The request body nests arrays and objects more than {limit} levels deep."
        )


def loads(raw: bytes) -> Any:
    """``raw`` parsed as JSON within the nesting limit; InvalidRequest when it is not."""
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        if "depth" in exc.msg:  # orjson's own limit (1024) is deeper than ours
            raise InvalidRequest(
                f"The request body nests arrays and objects more than {MAX_DEPTH} levels deep."
            ) from exc
        raise InvalidRequest(
            f"The request body is not valid JSON ({exc.msg} at position {exc.pos})."
        ) from exc
    check_depth(value, raw)
    return value

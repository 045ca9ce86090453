"""Small ASGI helpers for the hot path: read a bounded body, send JSON, send an OpenAI error."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson

from corral.errors import PayloadTooLarge, RequestError

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Headers = list[tuple[bytes, bytes]]

JSON = b"application/json"
EVENT_STREAM = b"text/event-stream"


class ClientGone(Exception):
    """The client closed the connection before the request body arrived."""


def header(scope: Scope, name: bytes) -> bytes | None:
    """The first value of request header ``name`` (lower-case bytes), or None."""
    for key, value in scope["headers"]:
        if key == name:
            return value  # type: ignore[no-any-return]  # ASGI types headers as bytes pairs
    return None


async def read_body(scope: Scope, receive: Receive, limit: int) -> bytes:
    """The whole request body; PayloadTooLarge as soon as it passes ``limit`` bytes."""
    declared = header(scope, b"content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(_too_large(limit))
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(_too_large(limit))
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _too_large(limit: int) -> str:
    return (
        f"The request body is larger than this server accepts ({limit} bytes). "
        "Send a shorter request or ask the platform team to raise server.max_body_bytes."
    )


async def send_bytes(
    send: Send, status: int, body: bytes, headers: Headers, content_type: bytes = JSON
) -> None:
    """A whole response in two messages."""
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", content_type), *headers],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def send_json(send: Send, status: int, payload: Any, headers: Headers) -> None:
    """``payload`` as a JSON response."""
    await send_bytes(send, status, orjson.dumps(payload), headers)


def error_headers(error: RequestError, headers: Headers) -> Headers:
    """``headers`` plus Retry-After when the error carries one."""
    if error.retry_after is None:
        return headers
    return [*headers, (b"retry-after", str(max(1, round(error.retry_after))).encode())]


async def send_error(send: Send, error: RequestError, headers: Headers) -> None:
    """``error`` in OpenAI's envelope with its status."""
    await send_json(send, error.status, error.envelope(), error_headers(error, headers))

"""uvicorn's httptools protocol with the limits it lacks: head size and time, sockets per client.

uvicorn bounds idle keep-alive connections (``timeout_keep_alive``) but, with httptools, not how
large a request head may grow, how long a client may take to send it, or how many sockets one
address may hold: a client without a key could buffer a 64 MB header or park a thousand
half-sent requests. This protocol refuses each in OpenAI's error envelope, then closes.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable
from typing import Any, ClassVar

import orjson
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from corral.errors import InvalidRequest, Overloaded, RequestError
from corral.settings import ConnectionLimits

log = logging.getLogger("corral.serving")


class _Refused(Exception):
    """Raised from a parser callback: the request head broke a limit."""

    def __init__(self, error: RequestError) -> None:
        super().__init__(error.message)
        self.error = error


def refusal_bytes(error: RequestError) -> bytes:
    """A whole HTTP/1.1 response carrying ``error``, which closes the connection."""
    body = orjson.dumps(error.envelope())
    head = [
        f"HTTP/1.1 {error.status} {_REASONS.get(error.status, 'Error')}",
        "content-type: application/json",
        f"content-length: {len(body)}",
        "connection: close",
    ]
    if error.retry_after is not None:
        head.append(f"retry-after: {max(1, round(error.retry_after))}")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


_REASONS = {
    400: "Bad Request",
    408: "Request Timeout",
    414: "URI Too Long",
    431: "Request Header Fields Too Large",
    503: "Service Unavailable",
}


def _status(error: RequestError, status: int) -> RequestError:
    error.status = status
    return error


class GuardedHttpTools(HttpToolsProtocol):
    """httptools with ``limits``; ``guarded_protocol`` makes one subclass per server, so the
    connection counts per client address are that server's."""

    limits: ClassVar[ConnectionLimits] = ConnectionLimits()
    per_client: ClassVar[Counter[str]] = Counter()

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._address: str | None = None
        self._in_head = True
        self._head_bytes = 0
        self._header_count = 0
        self._header_bytes = 0
        self._refusal: RequestError | None = None
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._address = self.client[0] if self.client else None
        if self._address is not None:
            self.per_client[self._address] += 1
        cap = self.limits.max_connections_per_client
        if len(self.connections) > self.limits.max_connections:
            self._refuse(Overloaded("This server has too many open connections; retry soon."))
        elif cap is not None and self._address and self.per_client[self._address] > cap:
            self._refuse(
                Overloaded(f"More than {cap} open connections from one address; reuse them.")
            )
        else:
            self._arm(self.limits.header_timeout, self._head_timed_out)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        if self._address is not None:
            self.per_client[self._address] -= 1
            if self.per_client[self._address] <= 0:
                del self.per_client[self._address]
            self._address = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._in_head:
            self._head_bytes += len(data)
        super().data_received(data)
        if self._in_head and self._head_bytes > self.limits.max_header_bytes:
            self._refuse(_status(InvalidRequest(_too_large_head(self.limits)), 431))

    def send_400_response(self, msg: str) -> None:
        # Called by uvicorn for every parser error, including a limit raised in a callback.
        self._refuse(self._refusal or InvalidRequest("The request is not valid HTTP/1.1."))

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head, self._header_count, self._header_bytes = True, 0, 0
        if self._timer is None:
            self._arm(self.limits.header_timeout, self._head_timed_out)

    def on_url(self, url: bytes) -> None:
        super().on_url(url)
        if len(self.url) > self.limits.max_url_bytes:
            self._raise(
                _status(
                    InvalidRequest(f"The URL is longer than {self.limits.max_url_bytes} bytes."),
                    414,
                )
            )

    def on_header(self, name: bytes, value: bytes) -> None:
        # A head that arrived whole in one read is measured here; a growing one in
        # data_received, before it is complete.
        self._header_count += 1
        self._header_bytes += len(name) + len(value) + 4
        if self._header_count > self.limits.max_headers:
            self._raise(
                _status(InvalidRequest(f"More than {self.limits.max_headers} headers."), 431)
            )
        if self._header_bytes + len(self.url) > self.limits.max_header_bytes:
            self._raise(_status(InvalidRequest(_too_large_head(self.limits)), 431))
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_head, self._head_bytes = False, 0
        self._disarm()
        self._arm(self.limits.body_timeout, self._body_timed_out)
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._disarm()
        self._in_head = True
        super().on_message_complete()

    def _raise(self, error: RequestError) -> None:
        self._refusal = error
        raise _Refused(error)

    def _refuse(self, error: RequestError) -> None:
        self._disarm()
        if self.transport.is_closing():
            return
        if self.cycle is None or self.cycle.response_complete:
            self.transport.write(refusal_bytes(error))
        # else: a pipelined head broke a limit while a response is on its way; an answer
        # written now would land inside that response, so the connection just closes.
        self.transport.close()

    def _arm(self, delay: float, callback: Callable[[], None]) -> None:
        self._disarm()
        self._timer = self.loop.call_later(delay, callback)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _head_timed_out(self) -> None:
        self._timer = None
        if self._in_head and (self.cycle is None or self.cycle.response_complete):
            self._refuse(
                _status(
                    InvalidRequest(
                        f"The request headers took longer than {self.limits.header_timeout:g} s."
                    ),
                    408,
                )
            )

    def _body_timed_out(self) -> None:
        # The app is waiting for the rest of the body: a closed connection tells it so.
        self._timer = None
        log.info("closed a connection whose request body was slower than the limit")
        self.transport.close()


def guarded_protocol(limits: ConnectionLimits) -> type[HttpToolsProtocol]:
    """A protocol class enforcing ``limits``, with connection counts of its own."""
    return type(
        "GuardedHttpTools", (GuardedHttpTools,), {"limits": limits, "per_client": Counter()}
    )


def _too_large_head(limits: ConnectionLimits) -> str:
    return (
        f"The request line and headers are larger than {limits.max_header_bytes} bytes; "
        "send fewer or shorter headers."
    )

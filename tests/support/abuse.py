"""Hostile clients for the connection limits: huge heads, half-sent requests, and a memory gauge."""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass

_PAGE = os.sysconf("SC_PAGE_SIZE")
HALF_SENT = (
    b"POST /v1/chat/completions HTTP/1.1\r\nHost: corral\r\nContent-Type: application/json\r\n"
)


def rss_bytes() -> int:
    """This process's resident memory now (the server under test runs in it, in a thread)."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * _PAGE


@dataclass
class PeakRss:
    """The highest resident memory sampled while the ``watch`` block ran."""

    start: int = 0
    peak: int = 0

    @property
    def growth(self) -> int:
        return self.peak - self.start


@contextlib.contextmanager
def watch(interval: float = 0.005) -> Iterator[PeakRss]:
    """Sample RSS every ``interval`` seconds in a thread until the block ends."""
    gauge = PeakRss(rss_bytes(), rss_bytes())
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            gauge.peak = max(gauge.peak, rss_bytes())
            time.sleep(interval)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield gauge
    finally:
        done.set()
        thread.join()
        gauge.peak = max(gauge.peak, rss_bytes())


def send_huge_header(port: int, total: int, chunk: int = 1 << 20) -> tuple[int, int | None]:
    """Send one request whose single header is ``total`` bytes long, with no key: how many bytes
    went out before the server cut the connection, and the status it answered (None if none
    could be read)."""
    sent = 0
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        try:
            sock.sendall(b"GET /v1/models HTTP/1.1\r\nHost: corral\r\nX-Filler: ")
            block = b"a" * chunk
            while sent < total:
                sock.sendall(block)
                sent += chunk
            sock.sendall(b"\r\n\r\n")
        except OSError:
            pass
        return sent, read_status(sock)


def read_status(sock: socket.socket, timeout: float = 5.0) -> int | None:
    """The status code of the response waiting on ``sock``; None on EOF, reset or timeout."""
    sock.settimeout(timeout)
    try:
        head = sock.recv(64)
    except OSError:
        return None
    if not head.startswith(b"HTTP/1.1 "):
        return None
    return int(head[9:12])


def read_response(sock: socket.socket, timeout: float = 5.0) -> bytes:
    """Everything the server sends until it closes (or ``timeout``)."""
    sock.settimeout(timeout)
    chunks: list[bytes] = []
    with contextlib.suppress(OSError):
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def half_sent(port: int, count: int, source: str = "127.0.0.2") -> list[socket.socket]:
    """``count`` connections from ``source`` that each send part of a request head and stop."""
    sockets = []
    for _ in range(count):
        sock = socket.socket()
        sock.bind((source, 0))
        sock.connect(("127.0.0.1", port))
        sock.sendall(HALF_SENT)
        sockets.append(sock)
    return sockets


def readyz(url: str, timeout: float = 5.0) -> int:
    """The status /readyz answers, or 0 when the connection failed."""
    try:
        with urllib.request.urlopen(f"{url}/readyz", timeout=timeout) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:
        return 0

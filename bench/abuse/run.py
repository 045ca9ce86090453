"""Unauthenticated abuse against a real gateway: a huge header and many half-sent requests.

Starts Corral (default connection limits unless told otherwise) with a FakeEngine on loopback,
then: one request whose single header is 64 MB, sent without a key; then N half-sent requests
from another loopback address (127.0.0.2). Reports resident memory (this process: the server
runs in it), whether /readyz kept answering, and how the server answered the abusers.

    PYTHONPATH=src:tests python bench/abuse/run.py [--half-sent 1100] [--header-mb 64]
"""

from __future__ import annotations

import argparse
import selectors
import socket
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[2] / "tests"))

from corral.settings import ConnectionLimits
from support.abuse import half_sent, read_status, readyz, rss_bytes, send_huge_header, watch
from support.gateway_harness import start_gateway

MB = 1 << 20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--half-sent", type=int, default=1100)
    parser.add_argument("--header-mb", type=int, default=64)
    parser.add_argument("--header-timeout", type=float, default=10.0)
    args = parser.parse_args()
    limits = ConnectionLimits(header_timeout=args.header_timeout)
    server, _, _ = start_gateway(limits=limits)
    with server:
        print(f"limits: {limits.model_dump()}")
        print(f"RSS at start: {rss_bytes() / MB:.0f} MB; /readyz {readyz(server.url)}")
        with watch() as rss:
            sent, status = send_huge_header(server.port, args.header_mb * MB)
        print(
            f"{args.header_mb} MB header: server answered {status}, cut after "
            f"{sent / MB:.0f} MB sent; RSS peak +{rss.growth / MB:.1f} MB; "
            f"/readyz {readyz(server.url)}"
        )
        with watch() as rss:
            started = time.monotonic()
            sockets = half_sent(server.port, args.half_sent)
            time.sleep(0.5)
            ready_during = readyz(server.url)
            refused = answers(sockets, 0.0)
            deadline = started + args.header_timeout + 5
            later = answers([s for s in sockets if s not in refused], deadline - time.monotonic())
            cut_after = time.monotonic() - started
            for sock in sockets:
                sock.close()
        print(
            f"{args.half_sent} half-sent requests: {len(refused)} refused at once "
            f"({_counts(refused)}), {len(later)} answered when their header time ran out "
            f"({_counts(later)}), {len(sockets) - len(refused) - len(later)} never; "
            f"done after {cut_after:.1f} s; /readyz during: {ready_during}, "
            f"after: {readyz(server.url)}; RSS peak +{rss.growth / MB:.1f} MB"
        )


def answers(sockets: list[socket.socket], within: float) -> dict[socket.socket, int | None]:
    """The status each socket got answered with, for those answered within ``within`` s."""
    got: dict[socket.socket, int | None] = {}
    with selectors.DefaultSelector() as selector:
        for sock in sockets:
            selector.register(sock, selectors.EVENT_READ)
        deadline = time.monotonic() + within
        while len(got) < len(sockets):
            ready = selector.select(max(0.0, deadline - time.monotonic()))
            if not ready:
                break
            for key, _ in ready:
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                got[sock] = read_status(sock, 1)
                selector.unregister(sock)
    return got


def _counts(statuses: dict[socket.socket, int | None]) -> str:
    return ", ".join(f"{s}: {n}" for s, n in Counter(statuses.values()).items()) or "-"


if __name__ == "__main__":
    main()

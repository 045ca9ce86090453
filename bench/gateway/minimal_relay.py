"""The practical floor for a Python proxy: a bare ASGI relay on the same stack as Corral.

uvicorn (httptools, uvloop) in, one pooled aiohttp session out, no auth, limits or metering.
Run: python minimal_relay.py UPSTREAM_BASE_URL PORT
"""

from __future__ import annotations

import sys
from typing import Any

import aiohttp
import uvicorn

UPSTREAM = sys.argv[1].rstrip("/")
sessions: list[aiohttp.ClientSession] = []  # one, made inside the serving loop


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    if not sessions:
        sessions.append(aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)))
    session = sessions[0]
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    url = UPSTREAM + scope["path"].removeprefix("/v1")
    async with session.post(url, data=body, headers={"Content-Type": "application/json"}) as up:
        headers = [(b"content-type", up.headers["Content-Type"].encode())]
        await send({"type": "http.response.start", "status": up.status, "headers": headers})
        async for chunk in up.content.iter_any():
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})


if __name__ == "__main__":
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=int(sys.argv[2]),
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_level="warning",
        lifespan="off",
    )

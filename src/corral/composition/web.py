"""The non-API routes of a Corral process: health, readiness, mounted front ends; metrics apart."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.types import ASGIApp

from corral.errors import InvalidRequest, NotFound, RequestError


def build_web_app(
    is_ready: Callable[[], bool],
    mounts: dict[str, ASGIApp],
    degraded: Callable[[], str | None] = lambda: None,
) -> Starlette:
    """Starlette app for /healthz, /readyz and the mounted admin API and portal. /metrics is not
    here: it shows every team's usage, so it is served on its own listener (see metrics_app).
    ``degraded``: why the process serves degraded (shown by /readyz), or None."""

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> Response:
        detail = degraded()
        if is_ready():
            body = {"status": "ready"}
            if detail is not None:
                body["degraded"] = detail
            return JSONResponse(body)
        return JSONResponse({"status": "not ready"}, status_code=503)

    routes: list[BaseRoute] = [Route("/healthz", healthz), Route("/readyz", readyz)]
    routes += [Mount(path, app=app) for path, app in mounts.items()]
    return Starlette(routes=routes, exception_handlers={HTTPException: _http_error})


def build_metrics_app(
    registry: CollectorRegistry, more_metrics: Callable[[], Awaitable[bytes]] | None = None
) -> Starlette:
    """Starlette app for /metrics alone, for the metrics listener (server.metrics_host/port).
    ``more_metrics``: exposition text appended to this process's own (the local engines')."""

    async def metrics(request: Request) -> Response:
        body = generate_latest(registry)
        if more_metrics is not None:
            body += await more_metrics()
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    return Starlette(
        routes=[Route("/metrics", metrics, methods=["GET"])],
        exception_handlers={HTTPException: _http_error},
    )


async def _http_error(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    error: RequestError
    if status == 404:
        error = NotFound(f"There is no route {request.url.path!r}. The API lives under /v1.")
    elif status == 405:
        error = InvalidRequest(f"{request.method} is not allowed on {request.url.path!r}.")
        error.status = 405
    else:
        error = InvalidRequest(str(getattr(exc, "detail", "Bad request")))
        error.status = status
    headers = exc.headers if isinstance(exc, HTTPException) else None  # 405: Allow
    return JSONResponse(error.envelope(), status_code=error.status, headers=headers)

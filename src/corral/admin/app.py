"""build_admin_app: the admin API as an ASGI app, mounted by the composition root at /admin/v1."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Mapping
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from corral.admin import audit, keys, teams, usage, users
from corral.admin.openapi import openapi_document
from corral.admin.operations import AdminContext, KeyHasher, Operation, endpoint, error_response
from corral.catalog import DeploymentCost
from corral.clock import Clock
from corral.errors import InvalidRequest, NotFound
from corral.store.port import Store
from corral.store.usage import UsageLedger


def operations() -> list[Operation[Any]]:
    """Every admin operation, in the order the OpenAPI document lists them."""
    return [
        *users.OPERATIONS[:1],
        *teams.OPERATIONS,
        *users.OPERATIONS[1:],
        *keys.OPERATIONS,
        *audit.OPERATIONS,
        *usage.OPERATIONS,
    ]


def build_admin_app(
    *,
    store: Store,
    keys: KeyHasher,
    clock: Clock,
    known_models: Callable[[], Collection[str]] | None = None,
    usage_ledger: UsageLedger | None = None,
    deployment_costs: Mapping[str, DeploymentCost] | None = None,
    limits_changed: Callable[[], Awaitable[None]] | None = None,
) -> Starlette:
    """The admin API. ``keys`` is the process's KeySync: it authenticates callers from memory,
    hashes new keys, and is refreshed after every change so it applies here at once.
    ``known_models`` (optional) lists the catalog's model names to check allowlists against;
    ``deployment_costs`` the self-hosted models whose cost usage reports attribute to teams."""
    ctx = AdminContext(
        store=store,
        keys=keys,
        clock=clock,
        known_models=known_models,
        usage=usage_ledger,
        deployment_costs=deployment_costs or {},
        limits_changed=limits_changed,
    )
    ops = operations()
    document = openapi_document(ops, _version())

    async def openapi(_: Request) -> Response:
        return JSONResponse(document)

    routes = [Route(op.path, endpoint(ctx, op), methods=[op.method]) for op in ops]
    routes.append(Route("/openapi.json", openapi, methods=["GET"]))
    return Starlette(routes=routes, exception_handlers={HTTPException: _http_error})


async def _http_error(_: Request, exc: Exception) -> Response:
    # Unknown paths and wrong methods, answered in the same envelope as every other refusal.
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    if status == 404:
        return error_response(NotFound("no such admin API route; see /admin/v1/openapi.json"))
    detail = exc.detail if isinstance(exc, HTTPException) else "the request failed"
    return JSONResponse(InvalidRequest(detail).envelope(), status_code=status)


def _version() -> str:
    try:
        return version("corral")
    except PackageNotFoundError:
        return "0.0.0"

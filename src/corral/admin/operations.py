"""One request pipeline for every admin operation: authenticate, authorise, parse, run, render."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, Protocol, TypeVar

from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from corral.admin.auth import KeyCache, authenticate
from corral.admin.policy import Action, Scope, Subject, allowed_somewhere, decide
from corral.admin.schemas import PATTERN_HINTS
from corral.catalog import DeploymentCost
from corral.clock import Clock
from corral.errors import (
    InvalidRequest,
    Overloaded,
    PayloadTooLarge,
    PermissionDenied,
    RequestError,
    TemporaryError,
)
from corral.principals import KEY_PREFIX, Principal
from corral.store.port import Store
from corral.store.records import Actor
from corral.store.usage import UsageLedger

log = logging.getLogger("corral.admin")

MAX_BODY_BYTES = 64 * 1024
INTERNAL_ERROR = {
    "error": {
        "message": "the admin API failed unexpectedly; the server log has the details",
        "type": "server_error",
        "param": None,
        "code": "internal_error",
    }
}
In = TypeVar("In", bound=BaseModel)


class KeyHasher(KeyCache, Protocol):
    """The key cache, plus hashing new keys under the server secret (KeySync provides both)."""

    def hash(self, key: str) -> str:
        """The keyed hash of ``key``."""
        ...


@dataclass(frozen=True, slots=True)
class AdminContext:
    """What every handler may use; passed in explicitly, never looked up from the app."""

    store: Store
    keys: KeyHasher
    clock: Clock
    known_models: Callable[[], Collection[str]] | None = None
    usage: UsageLedger | None = None
    deployment_costs: Mapping[str, DeploymentCost] = field(default_factory=dict)
    """Model name → running cost of self-hosted models whose usage reports attribute it."""
    limits_changed: Callable[[], Awaitable[None]] | None = None
    """Reloads this process's limits at once after an admin changed them (others reload on
    their own within ``limits.refresh_interval``)."""


@dataclass(frozen=True, slots=True)
class Call(Generic[In]):
    """One authenticated request: who, from where and when (``actor``), and its parsed input."""

    principal: Principal
    actor: Actor
    input: In
    path: Mapping[str, str]

    @property
    def now(self) -> float:
        return self.actor.at

    def authorize(self, action: Action, scope: Scope) -> None:
        """Raise PermissionDenied unless the caller may do ``action`` on ``scope``."""
        decision = decide(Subject.of(self.principal), action, scope)
        if not decision.allowed:
            raise PermissionDenied(
                f"{self.principal.role.value} may not {action.value}: {decision.reason}"
            )


Handler = Callable[[AdminContext, Call[In]], Awaitable[BaseModel | Response]]
Method = Literal["GET", "POST", "PATCH", "DELETE"]


@dataclass(frozen=True, slots=True)
class Operation(Generic[In]):
    """One admin endpoint: route, the action RBAC checks, input and output models, handler."""

    method: Method
    path: str
    action: Action
    summary: str
    input: type[In]
    output: type[BaseModel] | None
    handler: Handler[In]
    status: int = 200
    media_type: str = "application/json"

    @property
    def reads_query(self) -> bool:
        """GET and DELETE take their input from the query string, the others from a JSON body."""
        return self.method in ("GET", "DELETE")


def endpoint(ctx: AdminContext, op: Operation[Any]) -> Callable[[Request], Awaitable[Response]]:
    """The Starlette endpoint that runs ``op`` through the pipeline."""

    async def handle(request: Request) -> Response:
        try:
            now = ctx.clock.now()
            principal = authenticate(request.headers.get("authorization"), ctx.keys, now)
            if not allowed_somewhere(principal.role, op.action):
                raise PermissionDenied(f"{principal.role.value} may not {op.action.value}")
            data = await _input(request, op)
            actor = Actor(principal.key_id, now, request.client.host if request.client else None)
            result = await op.handler(ctx, Call(principal, actor, data, request.path_params))
        except RequestError as exc:
            return error_response(exc)
        except TemporaryError as exc:
            return error_response(Overloaded(exc.message, retry_after=exc.delay))
        except Exception:
            log.exception("admin %s failed unexpectedly", op.action.value)
            return JSONResponse(INTERNAL_ERROR, status_code=500)
        if op.method != "GET":
            log.info("admin %s by %s from %s", op.action.value, actor.key_id, actor.address)
            await _refresh(ctx)
        if isinstance(result, Response):
            return result
        return JSONResponse(result.model_dump(mode="json"), status_code=op.status)

    return handle


def askable(ref: str, longest: int = 254) -> bool:
    """Whether a reference from a URL could name anything (worth asking the store about)."""
    return len(ref) <= longest and ref.isprintable()


def quoted(ref: str) -> str:
    """``ref`` for an error message: shortened, and never echoed when it is a key itself."""
    if ref.startswith(KEY_PREFIX):
        return "(an API key, not shown: pass the key's id, key_…, from `corral key list`)"
    return repr(ref[:80])


def error_response(exc: RequestError) -> JSONResponse:
    """An error in OpenAI's envelope, with Retry-After when the error carries one."""
    headers = (
        {} if exc.retry_after is None else {"Retry-After": str(max(1, round(exc.retry_after)))}
    )
    return JSONResponse(exc.envelope(), status_code=exc.status, headers=headers)


async def _refresh(ctx: AdminContext) -> None:
    # The change is committed; a failed refresh only delays it to the next periodic one.
    try:
        await ctx.keys.refresh()
    except TemporaryError as exc:
        log.warning("admin: key cache not refreshed after a change: %s", exc.message)


async def _input(request: Request, op: Operation[In]) -> In:
    if op.reads_query:
        return _validate(op.input, dict(request.query_params))
    raw = await _body(request)
    if not raw.strip():
        return _validate(op.input, {})
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidRequest("the request body is not valid JSON; send a JSON object") from exc
    return _validate(op.input, data)


async def _body(request: Request) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise _too_large()
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise _too_large()
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large() -> PayloadTooLarge:
    return PayloadTooLarge(f"the request body is larger than {MAX_BODY_BYTES} bytes")


def _validate(model: type[In], data: object) -> In:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        error = exc.errors(include_url=False, include_input=False)[0]
        field = ".".join(str(part) for part in error["loc"]) or None
        where = f"{field}: " if field else ""
        hint = PATTERN_HINTS.get(str(error.get("ctx", {}).get("pattern")))
        message = hint or str(error["msg"]).removeprefix("Value error, ")
        raise InvalidRequest(f"{where}{message}", param=field) from exc

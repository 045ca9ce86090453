"""The developer's pages: model catalog with snippets, streaming playground, and API keys."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import httpx
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from corral.errors import InvalidRequest
from corral.portal.snippets import snippets
from corral.portal.upstream import error_message
from corral.portal.visits import Portal, Visit, guarded

MAX_CHAT_BYTES = 256 * 1024
_EXPIRY_DAYS = {"": None, "1": 1, "7": 7, "30": 30, "90": 90, "365": 365}


def routes(portal: Portal) -> list[Route]:
    """The catalog, playground and keys routes."""
    return [
        Route("/", guarded(portal, catalog), methods=["GET"]),
        Route("/playground", guarded(portal, playground), methods=["GET"]),
        Route("/playground/chat", guarded(portal, chat), methods=["POST"]),
        Route("/keys", guarded(portal, keys_page), methods=["GET"]),
        Route("/keys", guarded(portal, create_key), methods=["POST"]),
        Route("/keys/{key}/revoke", guarded(portal, revoke_key), methods=["POST"]),
    ]


def api_base_url(visit: Visit) -> str:
    """The /v1 URL developers should use, as they reach this Corral."""
    public = visit.portal.settings.public_url
    url = visit.request.url
    return f"{public or f'{url.scheme}://{url.netloc}'}/v1"


async def _models(visit: Visit) -> list[dict[str, Any]]:
    names = await visit.portal.upstream.model_names(visit.key)
    specs = {spec.name: spec for spec in visit.portal.models}
    models = []
    for name in names:
        spec = specs.get(name)
        models.append(
            {
                "name": name,
                "aliases": spec.aliases if spec else [],
                "context_length": spec.context_length if spec else None,
                "input_per_1m": spec.pricing.input_per_1m if spec else 0.0,
                "output_per_1m": spec.pricing.output_per_1m if spec else 0.0,
                "engine": spec.engine.kind if spec else "external",
                # Only the local engine says what a model does; the others serve chat.
                "task": getattr(spec.engine, "task", "chat") if spec else "chat",
                "status": "available",
            }
        )
    return models


async def catalog(visit: Visit) -> Response:
    models = await _models(visit)
    base_url = api_base_url(visit)
    for model in models:
        model["snippets"] = snippets(base_url, model["name"], model["task"])
    context = {"title": "Models", "models": models, "base_url": base_url}
    return visit.page("catalog.html", context)


async def playground(visit: Visit) -> Response:
    models = [m for m in await _models(visit) if m["task"] == "chat"]  # it only chats
    chosen = visit.request.query_params.get("model")
    context = {"title": "Playground", "models": models, "chosen": chosen}
    return visit.page("playground.html", context)


def chat_body(raw: bytes) -> bytes:
    """The /v1 request for a playground turn: only the fields the playground offers."""
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidRequest("the playground sent something that is not JSON") from exc
    if not isinstance(data, dict):
        raise InvalidRequest("the playground sent something that is not a JSON object")
    messages = data.get("messages")
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest("write a message first", param="messages")
    turns = [
        {"role": m["role"], "content": m["content"]}
        for m in messages
        if isinstance(m, dict)
        and m.get("role") in ("system", "user", "assistant")
        and isinstance(m.get("content"), str)
    ]
    body = {
        "model": str(data.get("model", "")),
        "messages": turns,
        "temperature": min(2.0, max(0.0, float(data.get("temperature", 1.0)))),
        "max_tokens": min(32768, max(1, int(data.get("max_tokens", 256)))),
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    return json.dumps(body).encode()


async def chat(visit: Visit) -> Response:
    raw = await visit.request.body()
    if len(raw) > MAX_CHAT_BYTES:
        raise InvalidRequest(f"the conversation is longer than {MAX_CHAT_BYTES} bytes")
    try:
        body = chat_body(raw)
    except (TypeError, ValueError) as exc:
        if isinstance(exc, InvalidRequest):
            raise
        raise InvalidRequest("temperature and max tokens must be numbers") from exc
    upstream = await visit.portal.upstream.open_chat(visit.key, body)
    if upstream.status_code >= 400:
        payload = json.loads(await upstream.aread() or b"null")
        await upstream.aclose()
        message = error_message(payload, f"the API answered {upstream.status_code}")
        return JSONResponse({"error": {"message": message}}, status_code=upstream.status_code)
    return StreamingResponse(
        _relay(upstream),
        media_type="text/event-stream",
        headers={"cache-control": "no-store", "x-accel-buffering": "no"},
    )


async def _relay(upstream: httpx.Response) -> AsyncIterator[bytes]:
    try:
        async for chunk in upstream.aiter_raw():
            yield chunk
    finally:
        await upstream.aclose()  # a closed tab stops the generation upstream too


async def keys_page(visit: Visit, created: dict[str, Any] | None = None) -> Response:
    session = visit.session
    params = {"user": session.user_id} if session.user_id else {}
    listing = await visit.portal.upstream.admin("GET", "/keys", visit.key, params=params)
    context = {
        "title": "API keys",
        "keys": listing.get("data", []),
        "created": created,
        "revoked": visit.request.query_params.get("revoked"),
        "expiry_days": [d for d in _EXPIRY_DAYS if d],
        "base_url": api_base_url(visit),
    }
    return visit.page("keys.html", context)


async def create_key(visit: Visit) -> Response:
    name = visit.form.get("name", "").strip()
    if not name:
        raise InvalidRequest("give the key a name, such as 'laptop' or 'ci'", param="name")
    days = _EXPIRY_DAYS.get(visit.form.get("expires_days", ""))
    body: dict[str, Any] = {"name": name[:100]}
    if days is not None:
        body["expires_in"] = days * 86400
    if visit.session.user_id:
        body["user"] = visit.session.user_id
    created = await visit.portal.upstream.admin("POST", "/keys", visit.key, body=body)
    return await keys_page(visit, created)


async def revoke_key(visit: Visit) -> Response:
    key_id = visit.request.path_params["key"]
    if key_id == visit.session.key_id:
        raise InvalidRequest("this key signs you in here; sign out instead", param="key")
    path = f"/keys/{quote(key_id, safe='')}/revoke"
    revoked = await visit.portal.upstream.admin("POST", path, visit.key)
    return visit.redirect("/keys?revoked=" + str(revoked.get("display", "")))

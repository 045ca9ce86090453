"""Parses and checks an API call's JSON body: what the gateway needs; refusals name the field."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import orjson

from corral import json_bounds
from corral.errors import InvalidRequest

_INT64 = 2**63 - 1


class CallKind(StrEnum):
    """The OpenAI endpoints the gateway relays."""

    CHAT = "chat/completions"
    COMPLETIONS = "completions"
    EMBEDDINGS = "embeddings"


@dataclass(slots=True)
class ApiCall:
    """One parsed API call."""

    kind: CallKind
    model: str
    stream: bool
    wants_usage: bool
    max_tokens: int | None
    body: dict[str, Any]
    raw: bytes


def parse_call(kind: CallKind, raw: bytes) -> ApiCall:
    """The call in ``raw``; InvalidRequest naming the field when something required is wrong."""
    body = _json_object(raw)
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidRequest(
            "You must provide a model parameter (a non-empty string).", param="model"
        )
    if kind is CallKind.CHAT:
        _check_messages(body.get("messages"))
    elif kind is CallKind.COMPLETIONS:
        if "prompt" not in body or body["prompt"] is not None:  # OpenAI allows null
            _check_text_input(body, "prompt")
    else:
        _check_text_input(body, "input")
    stream = body.get("stream", False)
    if stream is None:
        stream = False
    if not isinstance(stream, bool):
        raise InvalidRequest("'stream' must be true or false.", param="stream")
    if stream and kind is CallKind.EMBEDDINGS:
        raise InvalidRequest("Embeddings cannot be streamed.", param="stream")
    return ApiCall(
        kind=kind,
        model=model,
        stream=stream,
        wants_usage=stream and _wants_usage(body.get("stream_options")),
        max_tokens=_max_tokens(body),
        body=body,
        raw=raw,
    )


def _json_object(raw: bytes) -> dict[str, Any]:
    body = json_bounds.loads(raw)  # nested at most MAX_DEPTH: upstream_body can re-serialise it
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    return body


def _check_messages(messages: Any) -> None:
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest("'messages' must be a non-empty array of messages.", param="messages")
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise InvalidRequest(f"messages[{i}] must be an object.", param=f"messages[{i}]")
        role = message.get("role")
        if not isinstance(role, str) or not role:
            raise InvalidRequest(
                f"messages[{i}].role is required (system, user, assistant or tool).",
                param=f"messages[{i}].role",
            )


def _check_text_input(body: dict[str, Any], field: str) -> None:
    value = body.get(field)
    if isinstance(value, str):
        return
    if isinstance(value, list) and value:
        return
    raise InvalidRequest(f"'{field}' must be a string or a non-empty array.", param=field)


def _wants_usage(options: Any) -> bool:
    if options is None:
        return False
    if not isinstance(options, dict):
        raise InvalidRequest("'stream_options' must be an object.", param="stream_options")
    return options.get("include_usage") is True


def _max_tokens(body: dict[str, Any]) -> int | None:
    """The completion's token cap; both spellings are checked, and must agree when both given."""
    values = {}
    for field in ("max_completion_tokens", "max_tokens"):
        value = body.get(field)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= _INT64:
            raise InvalidRequest(f"'{field}' must be a positive integer.", param=field)
        values[field] = value
    if len(set(values.values())) > 1:
        raise InvalidRequest(
            "'max_tokens' and 'max_completion_tokens' disagree; send only max_completion_tokens.",
            param="max_tokens",
        )
    return next(iter(values.values()), None)


def upstream_body(call: ApiCall, upstream_model: str) -> bytes:
    """The body to send upstream: the client's bytes unless the model name or usage must change."""
    rename = upstream_model != call.model
    ask_usage = call.stream and not call.wants_usage
    if not rename and not ask_usage:
        return call.raw
    body = dict(call.body)
    if rename:
        body["model"] = upstream_model
    if ask_usage:
        options = body.get("stream_options")
        body["stream_options"] = {**(options or {}), "include_usage": True}
    return orjson.dumps(body)

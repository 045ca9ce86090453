"""Reads OpenAI request bodies into plain requests, refusing what the local engine cannot honour."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from corral.errors import InvalidRequest

_ROLES = {"system", "developer", "user", "assistant", "tool"}
# Fields a client may send with their "off" value; anything else is refused, not ignored.
_UNSUPPORTED: dict[str, tuple[Any, ...]] = {
    "tools": (None, []),
    "tool_choice": (None, "none", "auto"),
    "functions": (None, []),
    "function_call": (None, "none", "auto"),
    "logprobs": (None, False, 0),
    "top_logprobs": (None, 0),
    "logit_bias": (None, {}),
    "presence_penalty": (None, 0, 0.0),
    "frequency_penalty": (None, 0, 0.0),
    "echo": (None, False),
    "best_of": (None, 1),
    "suffix": (None, ""),
}


@dataclass(frozen=True)
class GenerationRequest:
    """A chat or legacy completion request, validated."""

    model: str
    messages: list[dict[str, str]] | None
    prompt: str | None
    n: int
    stream: bool
    include_usage: bool
    max_tokens: int | None
    temperature: float | None  # None: the model's default (GenerationDefaults)
    top_p: float | None
    seed: int | None
    stop: tuple[str, ...]


@dataclass(frozen=True)
class EmbeddingRequest:
    """An embeddings request, validated."""

    model: str
    texts: list[str]
    base64: bool
    dimensions: int | None


def read_json(raw: bytes) -> dict[str, Any]:
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"The request body is not valid JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    return body


def parse_generation(body: dict[str, Any], *, chat: bool, max_n: int) -> GenerationRequest:
    """A GenerationRequest from a /chat/completions (``chat``) or /completions body."""
    _refuse_unsupported(body)
    options = body.get("stream_options") or {}
    if not isinstance(options, dict):
        raise InvalidRequest("stream_options must be an object.", param="stream_options")
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    return GenerationRequest(
        model=str(body.get("model") or ""),
        messages=_messages(body.get("messages")) if chat else None,
        prompt=None if chat else _prompt(body.get("prompt")),
        n=_integer(body.get("n"), "n", 1, max_n, default=1),
        stream=bool(body.get("stream", False)),
        include_usage=bool(options.get("include_usage", False)),
        max_tokens=None if max_tokens is None else _integer(max_tokens, "max_tokens", 1, None),
        temperature=_given(body, "temperature", 0.0, 2.0),
        top_p=_given(body, "top_p", 0.0, 1.0, open_low=True),
        seed=None if body.get("seed") is None else _integer(body["seed"], "seed", None, None),
        stop=_stop(body.get("stop")),
    )


def parse_embedding(body: dict[str, Any], *, max_inputs: int) -> EmbeddingRequest:
    """An EmbeddingRequest; input is a string or a list of strings."""
    raw = body.get("input")
    texts = [raw] if isinstance(raw, str) else raw
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
        raise InvalidRequest(
            "input must be a non-empty string or a list of strings (token arrays are not "
            "supported by the local engine).",
            param="input",
        )
    if len(texts) > max_inputs:
        raise InvalidRequest(
            f"input has {len(texts)} items; send at most {max_inputs} per request.", param="input"
        )
    encoding = body.get("encoding_format") or "float"
    if encoding not in ("float", "base64"):
        raise InvalidRequest(
            "encoding_format must be 'float' or 'base64'.", param="encoding_format"
        )
    dims = body.get("dimensions")
    return EmbeddingRequest(
        model=str(body.get("model") or ""),
        texts=texts,
        base64=encoding == "base64",
        dimensions=None if dims is None else _integer(dims, "dimensions", 1, None),
    )


def _refuse_unsupported(body: dict[str, Any]) -> None:
    for name, allowed in _UNSUPPORTED.items():
        if body.get(name) not in allowed:
            raise InvalidRequest(
                f"The local engine does not support {name}; leave it out of the request.",
                param=name,
                code="unsupported_parameter",
            )
    response_format = body.get("response_format")
    if response_format not in (None, {"type": "text"}):
        raise InvalidRequest(
            "The local engine supports only response_format {'type': 'text'}.",
            param="response_format",
            code="unsupported_parameter",
        )


def _messages(value: Any) -> list[dict[str, str]]:
    if not isinstance(value, list) or not value:
        raise InvalidRequest("messages must be a non-empty list.", param="messages")
    messages = []
    for i, message in enumerate(value):
        if not isinstance(message, dict) or message.get("role") not in _ROLES:
            raise InvalidRequest(
                f"messages[{i}] must be an object with a role in {sorted(_ROLES)}.",
                param=f"messages[{i}]",
            )
        role = "system" if message["role"] == "developer" else str(message["role"])
        messages.append({"role": role, "content": _content(message.get("content"), i)})
    return messages


def _content(value: Any, i: int) -> str:
    if value is None or isinstance(value, str):
        return value or ""
    if isinstance(value, list):
        parts = []
        for part in value:
            if not isinstance(part, dict) or part.get("type") != "text":
                raise InvalidRequest(
                    f"messages[{i}].content: the local engine accepts only text parts.",
                    param=f"messages[{i}].content",
                )
            parts.append(str(part.get("text", "")))
        return "".join(parts)
    raise InvalidRequest(
        f"messages[{i}].content must be a string or a list of text parts.",
        param=f"messages[{i}].content",
    )


def _prompt(value: Any) -> str:
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    if not isinstance(value, str):
        raise InvalidRequest(
            "prompt must be a string (or a list holding one string).", param="prompt"
        )
    return value


def _stop(value: Any) -> tuple[str, ...]:
    stops = [value] if isinstance(value, str) else value
    if stops is None:
        return ()
    if not isinstance(stops, list) or not all(isinstance(s, str) and s for s in stops):
        raise InvalidRequest("stop must be a string or a list of non-empty strings.", param="stop")
    if len(stops) > 4:
        raise InvalidRequest("stop takes at most 4 sequences.", param="stop")
    return tuple(stops)


def _integer(value: Any, name: str, low: int | None, high: int | None, default: int = 0) -> int:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidRequest(f"{name} must be an integer.", param=name)
    if (low is not None and value < low) or (high is not None and value > high):
        span = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise InvalidRequest(f"{name} must be {span}; got {value}.", param=name)
    return value


def _given(
    body: dict[str, Any], name: str, low: float, high: float, *, open_low: bool = False
) -> float | None:
    """A number the request set, or None when it left it to the model's default."""
    value = body.get(name)
    return (
        None if value is None else _number(value, name, low, high, default=0.0, open_low=open_low)
    )


def _number(
    value: Any, name: str, low: float, high: float, *, default: float, open_low: bool = False
) -> float:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidRequest(f"{name} must be a number.", param=name)
    if value < low or value > high or (open_low and value == low):
        bound = f"greater than {low}" if open_low else f"at least {low}"
        raise InvalidRequest(f"{name} must be {bound} and at most {high}; got {value}.", param=name)
    return float(value)

"""OpenAI wire format pieces that engines produce: chunks, completions, usage, SSE framing."""

from __future__ import annotations

from typing import Any

import orjson

DONE = b"data: [DONE]\n\n"


def sse(payload: dict[str, Any]) -> bytes:
    """One server-sent event carrying ``payload`` as JSON."""
    return b"data: " + orjson.dumps(payload) + b"\n\n"


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    """OpenAI's usage object."""
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def chat_chunk(
    ident: str,
    created: int,
    model: str,
    *,
    content: str | None = None,
    role: str | None = None,
    finish_reason: str | None = None,
    index: int = 0,
) -> dict[str, Any]:
    """One ``chat.completion.chunk`` with a single choice."""
    delta: dict[str, str] = {}
    if role is not None:
        delta["role"] = role
    if content is not None:
        delta["content"] = content
    return {
        "id": ident,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [{"index": index, "delta": delta, "finish_reason": finish_reason}],
    }


def usage_chunk(
    ident: str, created: int, model: str, *, obj: str, prompt: int, completion: int
) -> dict[str, Any]:
    """The final chunk of a stream when usage was asked for: no choices, only usage."""
    return {
        "id": ident,
        "object": obj,
        "created": created,
        "model": model,
        "choices": [],
        "usage": usage(prompt, completion),
    }


def chat_completion(
    ident: str,
    created: int,
    model: str,
    *,
    texts: list[str],
    finish: str,
    prompt: int,
    completion: int,
) -> dict[str, Any]:
    """A whole ``chat.completion`` with one choice per text."""
    return {
        "id": ident,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [
            {
                "index": i,
                # OpenAI's schema requires refusal (null unless the model refused).
                "message": {"role": "assistant", "content": text, "refusal": None},
                "finish_reason": finish,
                "logprobs": None,
            }
            for i, text in enumerate(texts)
        ],
        "usage": usage(prompt, completion),
    }


def text_chunk(
    ident: str, created: int, model: str, *, text: str, finish_reason: str | None, index: int = 0
) -> dict[str, Any]:
    """One legacy ``text_completion`` stream chunk."""
    return {
        "id": ident,
        "object": "text_completion",
        "created": created,
        "model": model,
        "choices": [
            {"index": index, "text": text, "finish_reason": finish_reason, "logprobs": None}
        ],
    }


def text_completion(
    ident: str,
    created: int,
    model: str,
    *,
    texts: list[str],
    finish: str,
    prompt: int,
    completion: int,
) -> dict[str, Any]:
    """A whole legacy ``text_completion``."""
    body = text_chunk(ident, created, model, text="", finish_reason=finish)
    body["choices"] = [
        {"index": i, "text": text, "finish_reason": finish, "logprobs": None}
        for i, text in enumerate(texts)
    ]
    body["usage"] = usage(prompt, completion)
    return body


def embedding_list(model: str, vectors: list[Any], prompt_tokens: int) -> dict[str, Any]:
    """An ``embeddings`` list response; each vector is floats or a base64 string."""
    return {
        "object": "list",
        "model": model,
        "data": [
            {"object": "embedding", "index": i, "embedding": vector}
            for i, vector in enumerate(vectors)
        ],
        "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens},
    }


def model_list(names: list[str], owner: str, created: int) -> dict[str, Any]:
    """A ``/v1/models`` list response."""
    return {"object": "list", "data": [model_card(n, owner, created) for n in names]}


def model_card(name: str, owner: str, created: int) -> dict[str, Any]:
    """One model entry as ``/v1/models`` shows it."""
    return {"id": name, "object": "model", "created": created, "owned_by": owner}

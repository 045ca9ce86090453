"""What policies read from a request body: the routing key and the token cost."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from corral.gateway.policies.fair_queue import TokenDemand
from corral.gateway.policies.routing import RoutingKey

DEFAULT_PREFIX_BYTES = 256
"""Leading bytes of the rendered prompt that prefix affinity hashes."""

BYTES_PER_TOKEN = 4
"""Rough prompt-size estimate for the fair queue; tokenizers average 3-4 bytes per token."""

SESSION_HEADER = "x-session-id"
"""Request header carrying the client's session id for session affinity."""


def rendered_prompt(body: Mapping[str, Any]) -> bytes:
    """The prompt as the engine will see it, roughly: roles and contents in order, as UTF-8.

    Chat bodies render each message as ``role\\ncontent\\n`` (text parts of multi-part content
    joined; images and audio contribute their type only); completions bodies render ``prompt``
    (text, a list of texts, or token ids). Anything else renders as nothing.
    """
    messages = body.get("messages")
    if isinstance(messages, list):
        return "".join(_render_message(m) for m in messages if isinstance(m, Mapping)).encode()
    return _render_prompt(body.get("prompt")).encode()


def prefix_key(body: Mapping[str, Any], length: int = DEFAULT_PREFIX_BYTES) -> bytes | None:
    """The leading ``length`` bytes of the rendered prompt; None for an empty prompt."""
    if length < 1:
        raise ValueError("length must be at least 1")
    rendered = rendered_prompt(body)[:length]
    return rendered or None


def session_key(body: Mapping[str, Any], header: str | None) -> str | None:
    """The session id: the ``x-session-id`` header, else the OpenAI ``user`` field."""
    if header:
        return header
    user = body.get("user")
    return user if isinstance(user, str) and user else None


def routing_key(
    body: Mapping[str, Any],
    session_header: str | None = None,
    prefix_bytes: int = DEFAULT_PREFIX_BYTES,
) -> RoutingKey:
    """Both affinity keys of one request."""
    return RoutingKey(prefix_key(body, prefix_bytes), session_key(body, session_header))


def token_demand(body: Mapping[str, Any], max_tokens_default: int) -> TokenDemand:
    """What a request may use: a prompt estimate and its completion allowance.

    The allowance is ``max_completion_tokens`` or ``max_tokens`` when set, else the model's
    default; ``n`` completions multiply it.
    """
    prompt = -(-len(rendered_prompt(body)) // BYTES_PER_TOKEN)
    allowance = _positive_int(body.get("max_completion_tokens"))
    if allowance is None:
        allowance = _positive_int(body.get("max_tokens"))
    choices = _positive_int(body.get("n")) or 1
    completion = (allowance if allowance is not None else max_tokens_default) * choices
    return TokenDemand(prompt, completion)


def _render_message(message: Mapping[str, Any]) -> str:
    role = message.get("role")
    content = message.get("content")
    text = content if isinstance(content, str) else _render_parts(content)
    return f"{role if isinstance(role, str) else ''}\n{text}\n"


def _render_parts(content: object) -> str:
    if not isinstance(content, list):
        return ""
    pieces: list[str] = []
    for part in content:
        if not isinstance(part, Mapping):
            continue
        text = part.get("text")
        pieces.append(text if isinstance(text, str) else f"<{part.get('type', '')}>")
    return "".join(pieces)


def _render_prompt(prompt: object) -> str:
    if isinstance(prompt, str):
        return prompt
    if isinstance(prompt, int) and not isinstance(prompt, bool):
        return str(prompt)  # a token id
    if isinstance(prompt, list):
        return "\n".join(_render_prompt(item) for item in prompt)
    return ""


def _positive_int(value: object) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    return None

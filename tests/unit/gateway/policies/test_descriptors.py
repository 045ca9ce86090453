"""Routing keys and token demands read from OpenAI request bodies."""

from __future__ import annotations

from typing import Any

import pytest

from corral.gateway.policies.descriptors import (
    prefix_key,
    rendered_prompt,
    routing_key,
    session_key,
    token_demand,
)
from corral.gateway.policies.fair_queue import TokenDemand
from corral.gateway.policies.routing import RoutingKey

SYSTEM = {"role": "system", "content": "You are a terse assistant. " * 20}


def chat(*messages: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"model": "m", "messages": list(messages), **extra}


def test_chat_renders_roles_and_contents_in_order() -> None:
    body = chat({"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"})
    assert rendered_prompt(body) == b"system\nbe brief\nuser\nhi\n"


def test_multipart_content_keeps_text_and_marks_other_parts() -> None:
    content = [
        {"type": "text", "text": "what is "},
        {"type": "image_url", "image_url": {"url": "data:..."}},
        {"type": "text", "text": "this?"},
    ]
    assert rendered_prompt(chat({"role": "user", "content": content})) == (
        b"user\nwhat is <image_url>this?\n"
    )


@pytest.mark.parametrize(
    ("prompt", "rendered"),
    [("once upon", b"once upon"), (["a", "b"], b"a\nb"), ([1, 2, 3], b"1\n2\n3"), (None, b"")],
)
def test_completions_prompts_render(prompt: object, rendered: bytes) -> None:
    assert rendered_prompt({"model": "m", "prompt": prompt}) == rendered


def test_prefix_key_is_the_leading_bytes_so_shared_system_prompts_share_it() -> None:
    first = chat(SYSTEM, {"role": "user", "content": "question one"})
    second = chat(SYSTEM, {"role": "user", "content": "another question entirely"})
    assert prefix_key(first, 256) == prefix_key(second, 256)
    assert len(prefix_key(first, 256) or b"") == 256
    assert prefix_key(first, 10_000) != prefix_key(second, 10_000)


def test_prefix_key_counts_bytes_not_characters() -> None:
    assert prefix_key({"prompt": "ééé"}, 4) == "éé".encode()


def test_empty_prompt_has_no_prefix_key() -> None:
    assert prefix_key(chat()) is None
    with pytest.raises(ValueError, match="length"):
        prefix_key(chat(), 0)


def test_session_header_wins_over_user_field() -> None:
    assert session_key({"user": "u-1"}, "s-9") == "s-9"
    assert session_key({"user": "u-1"}, None) == "u-1"
    assert session_key({"user": 5}, "") is None


def test_routing_key_carries_both() -> None:
    body = chat({"role": "user", "content": "hello"}, user="alice")
    assert routing_key(body, None, 8) == RoutingKey(b"user\nhel", "alice")


def test_demand_is_prompt_estimate_and_completion_allowance() -> None:
    body = chat({"role": "user", "content": "x" * 394}, max_tokens=100)  # 400 bytes rendered
    assert token_demand(body, max_tokens_default=4096) == TokenDemand(100, 100)


def test_demand_prefers_max_completion_tokens_and_multiplies_by_n() -> None:
    body = {"prompt": "abcd", "max_completion_tokens": 50, "max_tokens": 9, "n": 3}
    assert token_demand(body, max_tokens_default=4096) == TokenDemand(1, 150)


def test_demand_falls_back_to_the_model_default_and_ignores_junk() -> None:
    body = {"prompt": "", "max_tokens": True, "n": -2}
    assert token_demand(body, max_tokens_default=512) == TokenDemand(0, 512)

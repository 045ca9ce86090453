"""Request parsing: what the local engine honours, and clear 400s naming what it does not."""

from __future__ import annotations

from typing import Any

import pytest

from corral.engines.local.parsing import parse_embedding, parse_generation, read_json
from corral.errors import InvalidRequest

CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


def chat(**extra: Any) -> dict[str, Any]:
    return {**CHAT, **extra}


def test_what_a_request_leaves_out_is_left_to_the_model() -> None:
    parsed = parse_generation(chat(), chat=True, max_n=4)
    assert (parsed.n, parsed.temperature, parsed.top_p, parsed.max_tokens) == (1, None, None, None)
    assert parsed.stop == ()
    assert not parsed.stream


def test_fields_are_read() -> None:
    parsed = parse_generation(
        chat(
            n=2,
            temperature=0,
            top_p=0.5,
            seed=9,
            stop="\n",
            max_completion_tokens=7,
            stream=True,
            stream_options={"include_usage": True},
        ),
        chat=True,
        max_n=4,
    )
    assert (parsed.n, parsed.temperature, parsed.top_p, parsed.seed) == (2, 0.0, 0.5, 9)
    assert (parsed.stop, parsed.max_tokens, parsed.include_usage) == (("\n",), 7, True)


def test_content_parts_and_developer_role() -> None:
    parsed = parse_generation(
        {
            "messages": [
                {"role": "developer", "content": "be brief"},
                {
                    "role": "user",
                    "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
                },
            ]
        },
        chat=True,
        max_n=1,
    )
    assert parsed.messages == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "ab"},
    ]


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"logprobs": True}, "logprobs"),
        ({"tools": [{"type": "function"}]}, "tools"),
        ({"presence_penalty": 0.5}, "presence_penalty"),
        ({"logit_bias": {"1": 5}}, "logit_bias"),
        ({"response_format": {"type": "json_object"}}, "response_format"),
        ({"n": 5}, "n"),
        ({"temperature": 3}, "temperature"),
        ({"top_p": 0}, "top_p"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),
        ({"stop": [""]}, "stop"),
        ({"seed": "x"}, "seed"),
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "robot", "content": "x"}]}, "messages[0]"),
        (
            {"messages": [{"role": "user", "content": [{"type": "image_url"}]}]},
            "messages[0].content",
        ),
    ],
)
def test_refusals_name_the_field(extra: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        parse_generation(chat(**extra), chat=True, max_n=4)
    assert info.value.param == param
    assert info.value.status == 400


def test_completion_prompt() -> None:
    assert parse_generation({"prompt": ["once"]}, chat=False, max_n=1).prompt == "once"
    with pytest.raises(InvalidRequest, match="prompt"):
        parse_generation({"prompt": [1, 2]}, chat=False, max_n=1)


def test_embedding_inputs() -> None:
    single = parse_embedding({"input": "a"}, max_inputs=3)
    assert (single.texts, single.base64) == (["a"], False)
    assert parse_embedding({"input": ["a", "b"], "encoding_format": "base64"}, max_inputs=3).base64
    for bad in ({"input": []}, {"input": [1, 2]}, {"input": ["a"], "encoding_format": "hex"}):
        with pytest.raises(InvalidRequest):
            parse_embedding(bad, max_inputs=3)
    with pytest.raises(InvalidRequest, match="at most 3"):
        parse_embedding({"input": ["a"] * 4}, max_inputs=3)


def test_body_must_be_a_json_object() -> None:
    with pytest.raises(InvalidRequest, match="not valid JSON"):
        read_json(b"{")
    with pytest.raises(InvalidRequest, match="object"):
        read_json(b"[]")

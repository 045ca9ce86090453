"""Parsing API calls: each refusal names the field; the body is only rewritten when needed."""

from __future__ import annotations

import orjson
import pytest

from corral.errors import InvalidRequest
from corral.gateway.calls import CallKind, parse_call, upstream_body


def call(body: object, kind: CallKind = CallKind.CHAT) -> object:
    return parse_call(kind, orjson.dumps(body))


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"messages": [{"role": "user", "content": "x"}]}, "model"),
        ({"model": "", "messages": []}, "model"),
        ({"model": "m"}, "messages"),
        ({"model": "m", "messages": ["hi"]}, "messages[0]"),
        ({"model": "m", "messages": [{"content": "x"}]}, "messages[0].role"),
        ({"model": "m", "messages": [{"role": "user"}], "stream": "yes"}, "stream"),
        ({"model": "m", "messages": [{"role": "user"}], "max_tokens": 0}, "max_tokens"),
        ({"model": "m", "messages": [{"role": "user"}], "max_tokens": True}, "max_tokens"),
        (
            {"model": "m", "messages": [{"role": "user"}], "stream": True, "stream_options": 1},
            "stream_options",
        ),
    ],
)
def test_bad_fields_are_named(body: object, param: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        call(body)
    assert info.value.param == param


def test_not_json_and_not_an_object() -> None:
    with pytest.raises(InvalidRequest, match="not valid JSON"):
        parse_call(CallKind.CHAT, b"{nope")
    with pytest.raises(InvalidRequest, match="JSON object"):
        parse_call(CallKind.CHAT, b"[1, 2]")


def test_embeddings_need_input_and_cannot_stream() -> None:
    with pytest.raises(InvalidRequest) as info:
        call({"model": "m"}, CallKind.EMBEDDINGS)
    assert info.value.param == "input"
    with pytest.raises(InvalidRequest):
        call({"model": "m", "input": "x", "stream": True}, CallKind.EMBEDDINGS)


def test_body_is_forwarded_untouched_when_nothing_changes() -> None:
    raw = orjson.dumps({"model": "m", "messages": [{"role": "user", "content": "x"}]})
    parsed = parse_call(CallKind.CHAT, raw)
    assert upstream_body(parsed, "m") is raw


def test_stream_asks_upstream_for_usage_and_renames_the_model() -> None:
    raw = orjson.dumps({"model": "alias", "messages": [{"role": "user"}], "stream": True})
    parsed = parse_call(CallKind.CHAT, raw)
    assert not parsed.wants_usage
    sent = orjson.loads(upstream_body(parsed, "real"))
    assert sent["model"] == "real"
    assert sent["stream_options"] == {"include_usage": True}


def nested(depth: int) -> object:
    value: object = "deep"
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize("depth", [300, 1000, 5000])
def test_deep_nesting_anywhere_is_refused_before_anything_walks_or_rewrites_it(depth: int) -> None:
    # 300 levels broke orjson's re-serialisation for streams; 1000 the prompt estimate.
    raw = (
        b'{"model":"m","stream":true,"messages":[{"role":"user","content":"x"}],"x":'
        + b"[" * depth
        + b"1"
        + b"]" * depth
        + b"}"
    )
    with pytest.raises(InvalidRequest, match="levels deep"):
        parse_call(CallKind.CHAT, raw)


def test_nesting_at_the_limit_is_accepted_and_can_be_rewritten() -> None:
    body = {"model": "m", "stream": True, "messages": [{"role": "user", "content": "x"}]}
    body["tools"] = nested(62)  # the body object and the array of 62 arrays: 63 levels
    parsed = parse_call(CallKind.CHAT, orjson.dumps(body))
    assert orjson.loads(upstream_body(parsed, "other"))["model"] == "other"


def test_both_token_caps_are_checked_and_must_agree() -> None:
    base = {"model": "m", "messages": [{"role": "user", "content": "x"}]}
    with pytest.raises(InvalidRequest) as info:
        call({**base, "max_completion_tokens": 5, "max_tokens": "abc"})
    assert info.value.param == "max_tokens"
    with pytest.raises(InvalidRequest, match="disagree"):
        call({**base, "max_completion_tokens": 5, "max_tokens": 6})
    with pytest.raises(InvalidRequest):
        call({**base, "max_tokens": 2**63})
    parsed = call({**base, "max_completion_tokens": 7, "max_tokens": 7})
    assert parsed.max_tokens == 7  # type: ignore[attr-defined]


def test_completions_accept_a_null_prompt_but_not_a_missing_one() -> None:
    assert call({"model": "m", "prompt": None}, CallKind.COMPLETIONS)
    with pytest.raises(InvalidRequest) as info:
        call({"model": "m"}, CallKind.COMPLETIONS)
    assert info.value.param == "prompt"

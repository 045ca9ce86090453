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

"""The official OpenAI SDK against a real gateway relaying to a real FakeEngine."""

from __future__ import annotations

import httpx
import openai
import pytest

from support.gateway_harness import GatewayUnderTest


def test_chat_completion(gateway: GatewayUnderTest) -> None:
    reply = gateway.client().chat.completions.create(
        model="fake-chat", messages=[{"role": "user", "content": "say hello to me"}]
    )
    expected = "Hello from the fake engine, one token at a time" + "Hello from the fake engine"
    assert reply.choices[0].message.content == expected
    assert reply.usage is not None
    assert reply.usage.prompt_tokens == 4
    assert reply.usage.completion_tokens == 16


def test_chat_stream_without_usage_hides_the_usage_chunk(gateway: GatewayUnderTest) -> None:
    stream = gateway.client().chat.completions.create(
        model="fake-chat", messages=[{"role": "user", "content": "hi"}], stream=True, max_tokens=5
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Hello from the fake engine"
    assert all(c.usage is None for c in chunks)
    assert all(c.choices for c in chunks)
    # The gateway asked the engine for usage anyway, to meter the stream.
    assert gateway.engine.state.requests[-1].body["stream_options"] == {"include_usage": True}


def test_chat_stream_with_usage_when_asked(gateway: GatewayUnderTest) -> None:
    stream = gateway.client().chat.completions.create(
        model="gpt-fake",
        messages=[{"role": "user", "content": "hi there"}],
        stream=True,
        max_tokens=3,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 3
    assert chunks[-1].usage.prompt_tokens == 2
    # An alias is sent upstream under the public name.
    assert gateway.engine.state.requests[-1].body["model"] == "fake-chat"


def test_legacy_completions(gateway: GatewayUnderTest) -> None:
    reply = gateway.client().completions.create(model="fake-chat", prompt="once upon", max_tokens=2)
    assert reply.choices[0].text == "Hello from"
    assert reply.usage is not None
    assert reply.usage.completion_tokens == 2


def test_embeddings_float_and_base64(gateway: GatewayUnderTest) -> None:
    client = gateway.client()
    default = client.embeddings.create(model="fake-chat", input=["a cat", "a dog"])
    floats = client.embeddings.create(
        model="fake-chat", input=["a cat", "a dog"], encoding_format="float"
    )
    assert len(default.data) == 2
    assert len(default.data[0].embedding) == 16
    assert default.data[0].embedding == pytest.approx(floats.data[0].embedding, rel=1e-6)


def test_models_list_and_retrieve(gateway: GatewayUnderTest) -> None:
    client = gateway.client()
    assert [m.id for m in client.models.list()] == ["fake-chat"]
    assert client.models.retrieve("fake-chat").id == "fake-chat"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("nope")


def test_missing_and_wrong_keys_are_401(gateway: GatewayUnderTest) -> None:
    with pytest.raises(openai.AuthenticationError) as info:
        gateway.client(key="ck-not-a-real-key").models.list()
    assert info.value.body["code"] == "invalid_api_key"  # type: ignore[index]
    response = httpx.get(f"{gateway.url}/v1/models")
    assert response.status_code == 401
    assert response.json()["error"]["type"] == "authentication_error"
    assert response.headers["x-request-id"].startswith("req_")


def test_unknown_model_is_404_listing_valid_names(gateway: GatewayUnderTest) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        gateway.client().chat.completions.create(
            model="gpt-9", messages=[{"role": "user", "content": "hi"}]
        )
    assert "fake-chat" in info.value.message
    assert info.value.body["param"] == "model"  # type: ignore[index]


def test_missing_field_is_400_naming_it(gateway: GatewayUnderTest) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        gateway.client().chat.completions.create(model="fake-chat", messages=[])
    assert info.value.body["param"] == "messages"  # type: ignore[index]


def test_malformed_json_is_400(gateway: GatewayUnderTest) -> None:
    response = httpx.post(
        f"{gateway.url}/v1/chat/completions",
        content=b'{"model": "fake-chat", "messages": [',
        headers={"Authorization": f"Bearer {gateway.key}", "Content-Type": "application/json"},
    )
    assert response.status_code == 400
    assert "not valid JSON" in response.json()["error"]["message"]


def test_body_over_the_limit_is_413(gateway: GatewayUnderTest) -> None:
    with pytest.raises(openai.APIStatusError) as info:
        gateway.client().chat.completions.create(
            model="fake-chat", messages=[{"role": "user", "content": "x" * (5 * 1024 * 1024)}]
        )
    assert info.value.status_code == 413


def test_engine_down_is_502(gateway: GatewayUnderTest) -> None:
    gateway.server.run(gateway.engine.stop())
    with pytest.raises(openai.APIStatusError) as info:
        gateway.client().chat.completions.create(
            model="fake-chat", messages=[{"role": "user", "content": "hi"}]
        )
    assert info.value.status_code == 502
    assert "Could not connect" in info.value.message
    assert "127.0.0.1" not in info.value.message


def test_engine_error_is_502_without_details(gateway: GatewayUnderTest) -> None:
    gateway.engine.script.failure = "error"
    with pytest.raises(openai.APIStatusError) as info:
        gateway.client().chat.completions.create(
            model="fake-chat", messages=[{"role": "user", "content": "hi"}]
        )
    assert info.value.status_code == 502
    assert "HTTP 500" in info.value.message


def test_chat_message_carries_refusal_as_the_schema_requires(gateway: GatewayUnderTest) -> None:
    reply = gateway.client().chat.completions.create(
        model="fake-chat", messages=[{"role": "user", "content": "hi"}], max_tokens=2
    )
    message = reply.choices[0].message
    # OpenAI's schema lists refusal as required (nullable): the SDK sees it sent, as null.
    assert "refusal" in message.model_fields_set
    assert message.refusal is None


def test_an_alias_is_a_model_card_like_its_model(gateway: GatewayUnderTest) -> None:
    client = gateway.client()
    card = client.models.retrieve("gpt-fake")
    assert isinstance(card, openai.types.Model)
    assert card.id == "gpt-fake"
    assert client.models.retrieve("fake-chat").id == "fake-chat"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("no-such-model")


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("DELETE", "/v1/models/fake-chat", "GET"),
        ("POST", "/v1/models", "GET"),
        ("PUT", "/v1/models/gpt-fake", "GET"),
        ("GET", "/v1/chat/completions", "POST"),
        ("DELETE", "/v1/embeddings", "POST"),
    ],
)
def test_wrong_methods_get_405_with_allow(
    gateway: GatewayUnderTest, method: str, path: str, allow: str
) -> None:
    response = httpx.request(
        method, gateway.url + path, headers={"Authorization": f"Bearer {gateway.key}"}
    )
    assert response.status_code == 405
    assert response.headers["allow"] == allow
    assert response.json()["error"]["code"] == "method_not_allowed"


def test_completions_with_a_null_prompt(gateway: GatewayUnderTest) -> None:
    reply = gateway.client().completions.create(model="fake-chat", prompt=None, max_tokens=2)
    assert isinstance(reply, openai.types.Completion)


def test_metrics_are_not_on_the_public_port(gateway: GatewayUnderTest) -> None:
    # /metrics shows every team's usage and the replicas' addresses: its own listener only.
    public = httpx.get(gateway.url + "/metrics")
    assert public.status_code == 404
    assert public.json()["error"]["type"] == "not_found_error"
    private = httpx.get(gateway.server.metrics_url)
    assert private.status_code == 200
    assert "# HELP corral_requests_total" in private.text

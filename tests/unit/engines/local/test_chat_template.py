"""Chat templates render like transformers' apply_chat_template, in a sandbox."""

from __future__ import annotations

import pytest

from corral.engines.local.chat_template import ChatTemplate
from corral.errors import InvalidRequest, ModelLoadError


def test_default_is_chatml_with_generation_prompt() -> None:
    text = ChatTemplate(None).render([{"role": "user", "content": "Hi"}])
    assert text == "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"


def test_model_template_sees_special_tokens_and_may_refuse() -> None:
    source = (
        "{{ bos_token }}{% for m in messages %}"
        "{% if m['role'] == 'system' %}{{ raise_exception('no system messages') }}{% endif %}"
        "[{{ m['content'] }}]{% endfor %}"
    )
    template = ChatTemplate(source, bos_token="<s>")
    assert template.render([{"role": "user", "content": "x"}]) == "<s>[x]"
    with pytest.raises(InvalidRequest, match="no system messages"):
        template.render([{"role": "system", "content": "x"}])


def test_template_cannot_reach_python_internals() -> None:
    template = ChatTemplate("{{ messages.__class__.__mro__ }}")
    with pytest.raises(InvalidRequest):
        template.render([{"role": "user", "content": "x"}])


def test_broken_template_is_a_load_error() -> None:
    with pytest.raises(ModelLoadError):
        ChatTemplate("{% for %}")

"""What a chat request gets for what it leaves out: the operator's, then the model's defaults."""

from __future__ import annotations

import pytest

from corral.catalog import LocalEngineConfig, ModelSpec
from corral.engines.local.chat_service import ChatService
from corral.engines.local.chat_template import ChatTemplate
from corral.engines.local.parsing import parse_generation
from corral.engines.local.sampling import GenerationDefaults, SamplingParams, model_sampling
from corral.engines.local.scheduler import Scheduler
from support.local_engine_fakes import CountingDecoder, LetterStream


class Letters:
    def encode(self, text: str, *, special: bool) -> list[int]:
        return [ord(c) % 40 for c in text]

    def stream(self) -> LetterStream:
        return LetterStream()


async def params_for(body: dict[str, object], defaults: GenerationDefaults) -> SamplingParams:
    scheduler = Scheduler(CountingDecoder(max_batch=1), eos_ids=frozenset(), max_queue=4)
    service = ChatService(
        scheduler,
        Letters(),
        ChatTemplate(None),
        context_length=2048,
        model_name="m",
        defaults=defaults,
    )
    request = parse_generation(
        {"model": "m", "messages": [{"role": "user", "content": "Hello!"}], **body},
        chat=True,
        max_n=1,
    )
    job = service.start(request, chat=True)
    service.cancel(job)
    return job.sequences[0].params


async def test_a_bare_hello_gets_the_default_length_and_sampling_not_the_whole_context() -> None:
    params = await params_for({}, GenerationDefaults(max_tokens=256, temperature=0.2, top_p=0.9))
    assert (params.max_tokens, params.temperature, params.top_p) == (256, 0.2, 0.9)


async def test_what_the_request_says_wins() -> None:
    body = {"max_tokens": 900, "temperature": 1.0, "top_p": 0.5}
    params = await params_for(body, GenerationDefaults(max_tokens=256, temperature=0.2))
    assert (params.max_tokens, params.temperature, params.top_p) == (900, 1.0, 0.5)


@pytest.mark.parametrize(
    ("config", "sampling"),
    [
        (None, {}),
        ({"bos_token_id": 1, "eos_token_id": 2}, {"temperature": 0.0, "top_p": 1.0}),
        (
            {"do_sample": True, "temperature": 0.6, "top_p": 0.95},
            {"temperature": 0.6, "top_p": 0.95},
        ),
        ({"do_sample": True, "top_k": 20}, {"temperature": 1.0, "top_p": 1.0}),
    ],
)
def test_the_models_generation_config_is_read_as_hugging_face_reads_it(
    config: dict[str, object] | None, sampling: dict[str, float]
) -> None:
    assert model_sampling(config) == sampling


def test_transformers_agrees_on_what_a_generation_config_without_do_sample_means() -> None:
    transformers = pytest.importorskip("transformers")
    generation = transformers.GenerationConfig.from_dict({"bos_token_id": 1, "eos_token_id": 2})
    # Not sampling (False, or None: "the default", which is greedy): temperature 0 here.
    assert generation.do_sample is not True
    assert transformers.GenerationConfig.from_dict({"do_sample": True}).do_sample is True


def test_the_settings_are_documented_and_bounded() -> None:
    fields = LocalEngineConfig.model_fields
    assert fields["max_tokens"].default == 512
    for name in ("max_tokens", "temperature", "top_p"):
        assert fields[name].description
    with pytest.raises(ValueError, match="temperature"):
        LocalEngineConfig(model="x", temperature=3)


def test_the_gateway_reserves_a_local_models_default_answer_length_not_4096() -> None:
    local = ModelSpec(name="m", engine=LocalEngineConfig(model="x", max_tokens=256))
    assert local.max_tokens_default == 256
    chosen = ModelSpec(name="m", engine=LocalEngineConfig(model="x"), max_tokens_default=99)
    assert chosen.max_tokens_default == 99

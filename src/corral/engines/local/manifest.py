"""What one-time preparation left in the data directory, read back at every start."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

from corral.errors import ModelLoadError

FORMAT = 1
MANIFEST = "manifest.json"

Backend = Literal["onnx", "transformers"]


@dataclass(frozen=True)
class PreparedModel:
    """A model ready to serve: where its weights and tokenizer are and how to run it."""

    task: Literal["chat", "embeddings"]
    backend: Backend
    model_dir: Path
    tokenizer_dir: Path
    label: str
    context_length: int
    eos_token_ids: tuple[int, ...] = ()
    chat_template: str | None = None
    bos_token: str = ""
    eos_token: str = ""
    pooling: Literal["mean", "cls"] = "mean"
    normalize: bool = True
    dimensions: int = 0
    sampling: dict[str, float] = field(default_factory=dict)
    """The model's own temperature and top_p (generation_config.json); empty without one."""

    def write(self, root: Path) -> None:
        """Store under ``root``, with paths inside ``root`` kept relative so the folder can move."""
        data: dict[str, Any] = asdict(self)
        for key in ("model_dir", "tokenizer_dir"):
            path: Path = data[key]
            data[key] = str(path.relative_to(root)) if path.is_relative_to(root) else str(path)
        data["format"] = FORMAT
        (root / MANIFEST).write_text(json.dumps(data, indent=2))

    @classmethod
    def read(cls, root: Path) -> PreparedModel | None:
        """The manifest under ``root``, or None when there is none or it is from another version."""
        try:
            data = json.loads((root / MANIFEST).read_text())
        except (OSError, ValueError):
            return None
        if data.pop("format", None) != FORMAT:
            return None
        known = {f.name for f in fields(cls)}
        try:
            data = {k: v for k, v in data.items() if k in known}
            data["model_dir"] = root / data["model_dir"]
            data["tokenizer_dir"] = root / data["tokenizer_dir"]
            data["eos_token_ids"] = tuple(data.get("eos_token_ids", ()))
            return cls(**data)
        except (KeyError, TypeError) as exc:
            raise ModelLoadError(
                f"{root / MANIFEST} is damaged ({exc}); delete {root} and prepare again"
            ) from exc

"""The general path: any Hugging Face causal LM through transformers and PyTorch on the CPU.

Each slot keeps its own cache; a decode step runs the slots one after another. That is slower
than the ONNX path's batched step but works for every architecture transformers can load.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np
import numpy.typing as npt

from corral.errors import ModelLoadError

Logits = npt.NDArray[np.float32]


class TorchDecoder:
    """A transformers model behind the scheduler's Decoder port."""

    def __init__(self, directory: Path, *, max_batch: int, threads: int) -> None:
        import torch
        from transformers import AutoModelForCausalLM

        if threads:
            torch.set_num_threads(threads)
        try:
            model = AutoModelForCausalLM.from_pretrained(str(directory), dtype=torch.float32)
        except (OSError, ValueError) as exc:
            raise ModelLoadError(f"{directory}: transformers could not load it ({exc})") from exc
        self._torch = torch
        self._model: Any = cast(Any, model).eval()
        self.max_batch = max_batch
        self._caches: list[Any] = [None] * max_batch

    def prefill(self, slot: int, tokens: Sequence[int], cached: int) -> Logits:
        if cached == 0:
            self._caches[slot] = None
        return self._forward(slot, list(tokens))

    def decode(self, tokens: Sequence[int], cached: Sequence[int]) -> Logits:
        return np.stack([self._forward(slot, [token]) for slot, token in enumerate(tokens)])

    def move(self, source: int, target: int, length: int) -> None:
        self._caches[target], self._caches[source] = self._caches[source], None

    def warm_up(self) -> None:
        self.prefill(0, [0, 0], 0)
        self._caches[0] = None

    def _forward(self, slot: int, tokens: list[int]) -> Logits:
        torch = self._torch
        with torch.inference_mode():
            out = self._model(
                input_ids=torch.tensor([tokens], dtype=torch.long),
                past_key_values=self._caches[slot],
                use_cache=True,
            )
        self._caches[slot] = out.past_key_values
        logits: Logits = out.logits[0, -1].float().numpy()
        return logits

"""The fast path: an int4 ONNX decoder (built by onnxruntime-genai) run with ONNX Runtime.

The key-value cache is one preallocated buffer per layer, shaped [slots, kv_heads, context, head],
shared between each layer's past input and present output (GroupQueryAttention writes new
positions in place). Running sequences sit in slots 0..n-1, so a batch is the contiguous view of
the first n slots and nothing is copied per step.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnxruntime as ort

from corral.errors import ModelLoadError

Logits = npt.NDArray[np.float32]


@dataclass(frozen=True)
class DecoderShape:
    """The parts of genai_config.json the decoder needs."""

    layers: int
    kv_heads: int
    head_size: int
    filename: str
    key_input: str
    value_input: str
    key_output: str
    value_output: str

    @classmethod
    def read(cls, directory: Path) -> DecoderShape:
        try:
            decoder = json.loads((directory / "genai_config.json").read_text())["model"]["decoder"]
            inputs, outputs = decoder["inputs"], decoder["outputs"]
            return cls(
                layers=int(decoder["num_hidden_layers"]),
                kv_heads=int(decoder["num_key_value_heads"]),
                head_size=int(decoder["head_size"]),
                filename=str(decoder["filename"]),
                key_input=str(inputs["past_key_names"]),
                value_input=str(inputs["past_value_names"]),
                key_output=str(outputs["present_key_names"]),
                value_output=str(outputs["present_value_names"]),
            )
        except (OSError, KeyError, TypeError, ValueError) as exc:
            raise ModelLoadError(
                f"{directory}: not a usable ONNX decoder folder ({exc}); "
                "delete it and run `corral engine prepare` again"
            ) from exc


def session_options(threads: int, *, spin: bool) -> ort.SessionOptions:
    """Options for a CPU session using ``threads`` cores (0: all).

    ``spin`` keeps idle workers busy-waiting for the next kernel. Measured through the gateway on
    2 cores: it halves decode speed (the spinning steals the core that the HTTP server and the
    gateway need between steps) but lifts batched encoding from ~300 to ~450 sentences/s.
    """
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
    return options


class OnnxDecoder:
    """Runs prefill and batched decode steps against per-slot key-value buffers."""

    def __init__(self, directory: Path, *, max_batch: int, context: int, threads: int) -> None:
        shape = DecoderShape.read(directory)
        try:
            self._session = ort.InferenceSession(
                str(directory / shape.filename),
                session_options(threads, spin=False),
                providers=["CPUExecutionProvider"],
            )
        except Exception as exc:  # ONNX Runtime raises its own untyped errors
            raise ModelLoadError(f"{directory}: ONNX Runtime could not load it ({exc})") from exc
        self.max_batch = max_batch
        self._context = context
        self._shape = shape
        dims = (max_batch, shape.kv_heads, context, shape.head_size)
        # np.zeros maps untouched pages lazily, so unused context costs address space, not memory.
        self._keys = [np.zeros(dims, np.float32) for _ in range(shape.layers)]
        self._values = [np.zeros(dims, np.float32) for _ in range(shape.layers)]
        self._bindings: dict[tuple[int, int], Any] = {}

    def prefill(self, slot: int, tokens: Sequence[int], cached: int) -> Logits:
        total = cached + len(tokens)
        ids = np.asarray([tokens], dtype=np.int64)
        mask = np.ones((1, total), dtype=np.int64)
        logits: Logits = self._run(slot, 1, ids, mask)[0]
        return logits

    def decode(self, tokens: Sequence[int], cached: Sequence[int]) -> Logits:
        lengths = np.asarray(cached, dtype=np.int64) + 1
        ids = np.asarray(tokens, dtype=np.int64)[:, None]
        # Right-padded: each row attends to its own length; GroupQueryAttention reads the sums.
        mask = (np.arange(int(lengths.max()))[None, :] < lengths[:, None]).astype(np.int64)
        return self._run(0, len(tokens), ids, mask)

    def move(self, source: int, target: int, length: int) -> None:
        for buffers in (self._keys, self._values):
            for layer in buffers:
                layer[target, :, :length] = layer[source, :, :length]

    def warm_up(self) -> None:
        """Run every batch size once so the first real requests do not pay for allocation."""
        for size in range(1, self.max_batch + 1):
            for slot in range(size):
                self.prefill(slot, [0, 0], 0)
            self.decode([0] * size, [2] * size)

    def _run(
        self, first: int, count: int, ids: npt.NDArray[np.int64], mask: npt.NDArray[np.int64]
    ) -> Logits:
        binding = self._binding(first, count)
        binding.bind_cpu_input("input_ids", ids)
        binding.bind_cpu_input("attention_mask", mask)
        binding.bind_output("logits")
        self._session.run_with_iobinding(binding)
        logits: Logits = binding.get_outputs()[-1].numpy()
        return logits[:, -1, :]

    def _binding(self, first: int, count: int) -> Any:
        """An IO binding whose caches are views of slots ``first..first+count-1``."""
        key = (first, count)
        binding = self._bindings.get(key)
        if binding is None:
            binding = self._session.io_binding()
            shape = self._shape
            for layer in range(shape.layers):
                for name_in, name_out, buffers in (
                    (shape.key_input, shape.key_output, self._keys),
                    (shape.value_input, shape.value_output, self._values),
                ):
                    view = ort.OrtValue.ortvalue_from_numpy(buffers[layer][first : first + count])
                    binding.bind_ortvalue_input(name_in % layer, view)
                    binding.bind_ortvalue_output(name_out % layer, view)
            self._bindings[key] = binding
        return binding

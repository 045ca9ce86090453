"""Sentence encoders (ONNX Runtime or transformers), pooled and normalized the same way."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Protocol

import numpy as np
import numpy.typing as npt
from tokenizers import Tokenizer

from corral.errors import ModelLoadError

Ids = npt.NDArray[np.int64]
Vectors = npt.NDArray[np.float32]


class Encoder(Protocol):
    """Runs a batch of padded token ids to per-token hidden states [batch, tokens, dims]."""

    def hidden_states(self, ids: Ids, mask: Ids) -> Vectors: ...


class OnnxEncoder:
    """An encoder exported to ONNX at preparation time."""

    def __init__(self, directory: Path, *, threads: int) -> None:
        import onnxruntime as ort

        from corral.engines.local.onnx_decoder import session_options

        try:
            self._session = ort.InferenceSession(
                str(directory / "model.onnx"),
                session_options(threads, spin=True),
                providers=["CPUExecutionProvider"],
            )
        except Exception as exc:  # ONNX Runtime raises its own untyped errors
            raise ModelLoadError(f"{directory}: ONNX Runtime could not load it ({exc})") from exc
        self._names = {i.name for i in self._session.get_inputs()}

    def hidden_states(self, ids: Ids, mask: Ids) -> Vectors:
        feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        out: Vectors = self._session.run(
            None, {k: v for k, v in feeds.items() if k in self._names}
        )[0]
        return out


class TorchEncoder:
    """Any transformers encoder, run with PyTorch."""

    def __init__(self, directory: Path, *, threads: int) -> None:
        import torch
        from transformers import AutoModel

        if threads:
            torch.set_num_threads(threads)
        try:
            self._model = AutoModel.from_pretrained(str(directory)).eval()
        except (OSError, ValueError) as exc:
            raise ModelLoadError(f"{directory}: transformers could not load it ({exc})") from exc
        self._torch = torch

    def hidden_states(self, ids: Ids, mask: Ids) -> Vectors:
        torch = self._torch
        with torch.inference_mode():
            out = self._model(
                input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask)
            )
        hidden: Vectors = out.last_hidden_state.float().numpy()
        return hidden


class Embedder:
    """Tokenizes, batches by length, encodes and pools sentences into unit vectors."""

    def __init__(
        self,
        encoder: Encoder,
        tokenizer: Tokenizer,
        *,
        max_tokens: int,
        pooling: Literal["mean", "cls"],
        normalize: bool,
        batch_size: int = 32,
    ) -> None:
        self._encoder = encoder
        self._tokenizer = tokenizer
        self._tokenizer.no_padding()
        self._tokenizer.enable_truncation(max_tokens)
        self._pooling = pooling
        self._normalize = normalize
        self._batch = batch_size

    def embed(self, texts: list[str]) -> tuple[Vectors, list[int]]:
        """One vector per text, in order, and how many tokens each text was read as."""
        encodings = [e.ids for e in self._tokenizer.encode_batch(texts)]
        order = sorted(range(len(texts)), key=lambda i: len(encodings[i]))
        out: list[Vectors] = [np.empty(0, np.float32)] * len(texts)
        for start in range(0, len(order), self._batch):
            chunk = order[start : start + self._batch]
            vectors = self._run([encodings[i] for i in chunk])
            for i, vector in zip(chunk, vectors, strict=True):
                out[i] = vector
        return np.stack(out), [len(e) for e in encodings]

    def _run(self, batch: list[list[int]]) -> Vectors:
        width = max(len(ids) for ids in batch)
        ids = np.zeros((len(batch), width), dtype=np.int64)
        mask = np.zeros((len(batch), width), dtype=np.int64)
        for row, tokens in enumerate(batch):
            ids[row, : len(tokens)] = tokens
            mask[row, : len(tokens)] = 1
        hidden = self._encoder.hidden_states(ids, mask)
        if self._pooling == "cls":
            pooled = hidden[:, 0]
        else:
            weights = mask[..., None].astype(np.float32)
            pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
        if self._normalize:
            pooled = pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
        return pooled.astype(np.float32)

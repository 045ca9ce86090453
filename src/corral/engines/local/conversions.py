"""One-time conversions: GGUF to a Hugging Face folder, decoders to int4 ONNX, encoders to ONNX."""

from __future__ import annotations

import inspect
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import numpy.typing as npt

from corral.errors import ModelLoadError


class ConversionFailed(ModelLoadError):
    """A conversion did not produce a usable model; the caller may fall back to another backend."""


def export_gguf(gguf: Path, target: Path) -> None:
    """Write the GGUF model at ``gguf`` as a plain Hugging Face folder (float32 safetensors)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    except (OSError, ValueError, KeyError) as exc:
        raise ModelLoadError(f"{gguf}: transformers cannot read this GGUF file ({exc})") from exc
    # transformers marks GGUF-loaded models as quantized, but their weights are already
    # dequantized to float32, so they save as an ordinary checkpoint once the mark is gone.
    object.__setattr__(model, "hf_quantizer", None)
    model.config.__dict__.pop("quantization_config", None)
    model.save_pretrained(str(target))
    tokenizer.save_pretrained(str(target))


def build_int4(hf_dir: Path, target: Path, log_path: Path) -> None:
    """Build an int4 CPU decoder with onnxruntime-genai's model builder (a child process)."""
    scratch = target.parent / "builder-cache"
    command = [
        sys.executable,
        "-m",
        "onnxruntime_genai.models.builder",
        *("-i", str(hf_dir), "-o", str(target), "-p", "int4", "-e", "cpu", "-c", str(scratch)),
        *("--extra_options", "prune_lm_head=true"),
    ]
    with log_path.open("wb") as log:
        result = subprocess.run(  # noqa: S603 - fixed argv, no shell
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            check=False,
            env={**os.environ, "HF_HUB_OFFLINE": "1"},
        )
    shutil.rmtree(scratch, ignore_errors=True)
    if result.returncode != 0 or not (target / "genai_config.json").is_file():
        tail = log_path.read_text(errors="replace").strip().splitlines()[-5:]
        raise ConversionFailed(
            f"the int4 ONNX build failed (exit {result.returncode}): " + " | ".join(tail)
        )


def export_encoder(hf_dir: Path, target: Path) -> None:
    """Export a transformers encoder's last hidden state to ONNX and check it against PyTorch."""
    import torch
    from transformers import AutoModel

    try:
        model = AutoModel.from_pretrained(str(hf_dir), attn_implementation="eager").eval()
    except (OSError, ValueError) as exc:
        raise ConversionFailed(f"{hf_dir}: transformers could not load it ({exc})") from exc
    names = ["input_ids", "attention_mask"]
    if "token_type_ids" in inspect.signature(model.forward).parameters:
        names.append("token_type_ids")

    class HiddenStates(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.encoder = model

        def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
            out = self.encoder(**dict(zip(names, inputs, strict=True)))
            hidden: torch.Tensor = out.last_hidden_state
            return hidden

    feeds = _probe(names)
    with torch.inference_mode():
        # Computed before exporting: tracing leaves the PyTorch model giving different answers.
        want = model(**{k: torch.from_numpy(v) for k, v in feeds.items()}).last_hidden_state
    sample = torch.ones((2, 8), dtype=torch.long)
    inputs = tuple(sample.clone() if n != "token_type_ids" else sample * 0 for n in names)
    axes = {n: {0: "batch", 1: "sequence"} for n in [*names, "last_hidden_state"]}
    target.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer's warnings are about shapes we made dynamic
        torch.onnx.export(
            HiddenStates(),
            inputs,
            str(target / "model.onnx"),
            input_names=names,
            output_names=["last_hidden_state"],
            dynamic_axes=axes,
            opset_version=17,
            dynamo=False,
        )
    _check_encoder(target / "model.onnx", feeds, want.numpy())


def _probe(names: list[str]) -> dict[str, npt.NDArray[np.int64]]:
    """A padded batch of another shape than the export's sample, to check dynamic axes."""
    rng = np.random.default_rng(0)
    ids = rng.integers(1000, 2000, size=(3, 13), dtype=np.int64)
    mask = np.ones_like(ids)
    mask[0, -4:] = 0
    feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
    return {k: v for k, v in feeds.items() if k in names}


def _check_encoder(
    path: Path, feeds: dict[str, npt.NDArray[np.int64]], want: npt.NDArray[np.float32]
) -> None:
    """Fail unless ONNX Runtime agrees with PyTorch on the probe batch."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, feeds)[0]
    real = feeds["attention_mask"].astype(bool)
    error = float(np.abs(got - want)[real].max())
    if error > 1e-3:
        raise ConversionFailed(f"the ONNX encoder differs from PyTorch by {error:.2g}")

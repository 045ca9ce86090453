"""Model location and the preparation cache: what was tried, and manifests that survive a move."""

from __future__ import annotations

from pathlib import Path

import pytest

from corral.engines.local.manifest import PreparedModel
from corral.engines.local.preparation import cached
from corral.engines.local.sources import locate
from corral.errors import ModelLoadError


def noop(message: str) -> None:
    del message


def test_local_gguf_file_and_folder(tmp_path: Path) -> None:
    gguf = tmp_path / "tiny.gguf"
    gguf.write_bytes(b"GGUF")
    assert locate(str(gguf), "chat", hub_cache=tmp_path, report=noop).kind == "gguf"
    (tmp_path / "config.json").write_text("{}")
    assert locate(str(tmp_path), "chat", hub_cache=tmp_path, report=noop).kind == "hf_dir"


def test_offline_and_missing_says_what_was_tried_and_how_to_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelLoadError) as info:
        locate("nobody/no-such-model", "chat", hub_cache=tmp_path, report=noop)
    message = info.value.message
    assert "Tried" in message
    assert "does not exist" in message
    assert "HF_HUB_OFFLINE" in message
    assert "engine.model" in message  # how to point Corral at a local model


def test_folder_without_config_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelLoadError, match=r"no config\.json"):
        locate(str(tmp_path), "chat", hub_cache=tmp_path, report=noop)


def test_manifest_round_trip_with_relative_paths(tmp_path: Path) -> None:
    root = tmp_path / "prepared"
    (root / "onnx").mkdir(parents=True)
    model = PreparedModel(
        task="chat",
        backend="onnx",
        model_dir=root / "onnx",
        tokenizer_dir=root / "tokenizer",
        label="tiny",
        context_length=128,
        eos_token_ids=(2, 7),
        chat_template="{{ x }}",
    )
    model.write(root)
    moved = tmp_path / "moved"
    root.rename(moved)
    again = PreparedModel.read(moved)
    assert again is not None
    assert again.model_dir == moved / "onnx"
    assert again.eos_token_ids == (2, 7)
    assert cached(moved, "auto") == again
    assert cached(moved, "transformers") is None  # asked for another backend: prepare again


def test_missing_or_foreign_manifest_reads_as_absent(tmp_path: Path) -> None:
    assert PreparedModel.read(tmp_path) is None
    (tmp_path / "manifest.json").write_text('{"format": 999}')
    assert PreparedModel.read(tmp_path) is None

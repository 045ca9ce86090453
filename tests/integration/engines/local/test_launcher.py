"""The launcher's failure path: a model that cannot be found stops the start with a clear error."""

from __future__ import annotations

from pathlib import Path

import pytest

from corral.catalog import LocalEngineConfig
from corral.engines.local.launcher import launch_local_engine
from corral.errors import ModelLoadError


async def test_missing_model_reports_the_engines_last_lines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    progress: list[str] = []
    config = LocalEngineConfig(model=str(tmp_path / "missing.gguf"))
    with pytest.raises(ModelLoadError) as info:
        await launch_local_engine("ghost", config, tmp_path, progress.append)
    message = info.value.message
    assert "exited with code 1" in message
    assert "missing.gguf" in message
    assert "Tried" in message
    assert (tmp_path / "logs" / "engine-ghost.log").is_file()

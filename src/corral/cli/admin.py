"""`corral team|user|key|audit`: self-service over the admin API (and `db`, from cli/db.py)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import sys
import urllib.parse
from collections.abc import Callable, Iterator, Sequence
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from corral.admin.client import AdminClient
from corral.admin.schemas import MAX_GRACE, MAX_LIFETIME, MIN_LIFETIME
from corral.admin.teams import lifetime_text
from corral.cli.address import DEFAULT_URL, base_url
from corral.cli.listing import KeyPagesOpt, LimitOpt, PagesOpt, PrefixOpt, pages, show_pages
from corral.cli.names import Names
from corral.errors import AuthenticationFailed, CorralError, PermissionDenied
from corral.principals import Role
from corral.settings import read_yaml

_FLEXIBLE = {"Name", "Description", "Email", "Models", "Changes"}
_ISO_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z")
CONFIG_ENV = "CORRAL_CLI_CONFIG"

team_app = typer.Typer(help="Create, list, show, update and delete teams.", no_args_is_help=True)
user_app = typer.Typer(help="Add users, list them and set their roles.", no_args_is_help=True)
key_app = typer.Typer(help="Create, list, revoke and rotate API keys.", no_args_is_help=True)
audit_app = typer.Typer(
    help="Read and export the audit log of admin changes.", no_args_is_help=True
)


def register(app: typer.Typer) -> None:
    """Add the admin command groups (and ``db``) to the main ``corral`` command."""
    from corral.cli.db import db_app  # db.py builds on this module's helpers

    for group, name in ((team_app, "team"), (user_app, "user"), (key_app, "key")):
        app.add_typer(group, name=name)
    app.add_typer(audit_app, name="audit")
    app.add_typer(db_app, name="db")  # local: migrates the configured database


class Output(StrEnum):
    table = "table"
    json = "json"


UrlOpt = Annotated[
    str | None,
    typer.Option("--url", envvar="CORRAL_URL", help=f"Corral's address (default: {DEFAULT_URL})."),
]
KeyOpt = Annotated[
    str | None,
    typer.Option("--api-key", envvar="CORRAL_API_KEY", help="Your API key.", show_default=False),
]
OutOpt = Annotated[
    Output, typer.Option("--output", "-o", help="table for people, json for scripts.")
]
YesOpt = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]

_out = Console(soft_wrap=True)
_err = Console(stderr=True, soft_wrap=True)

Column = tuple[str, Callable[[dict[str, Any]], Any]]


def cli_config_path() -> Path:
    """Where URL and key may be kept: $CORRAL_CLI_CONFIG or ~/.config/corral/cli.yaml."""
    return Path(os.environ.get(CONFIG_ENV) or Path.home() / ".config" / "corral" / "cli.yaml")


@contextlib.contextmanager
def _client(url: str | None, api_key: str | None) -> Iterator[AdminClient]:
    """A client from flags, then environment (Typer reads it), then the CLI config file."""
    stored: dict[str, Any] = {}
    path = cli_config_path()
    if (url is None or api_key is None) and path.exists():
        stored = read_yaml(path)
    key = api_key or stored.get("api_key")
    if not key:
        raise AuthenticationFailed(
            f"no API key: pass --api-key, set CORRAL_API_KEY, or put api_key: in {path}"
        )
    with AdminClient(base_url(url or stored.get("url")), str(key)) as client:
        yield client


@contextlib.contextmanager
def reporting() -> Iterator[None]:
    """Every failure as one clear line on stderr and exit status 2, never a stack trace."""
    try:
        yield
    except AuthenticationFailed as exc:
        _fail(
            f"{exc.message}\nhint: pass --api-key, set CORRAL_API_KEY, or use {cli_config_path()}"
        )
    except PermissionDenied as exc:
        _fail(f"not allowed: {exc.message}")
    except CorralError as exc:
        param = getattr(exc, "param", None)
        _fail(f"{exc.message}" + (f" (field: {param})" if param else ""))


def _fail(message: str) -> None:
    _err.print(f"[red]error:[/] {escape(message)}", highlight=False)
    raise typer.Exit(2)


def _render(output: Output, data: Any, columns: Sequence[Column], header: bool = True) -> None:
    if output is Output.json:
        print(json.dumps(data, indent=2, ensure_ascii=False))
        return
    rows = data["data"] if isinstance(data, dict) and "data" in data else [data]
    table = Table(show_lines=False, show_header=header)
    for name, _ in columns:
        # Ids and times stay whole (to copy); free text wraps when the terminal is narrow.
        table.add_column(name, no_wrap=name not in _FLEXIBLE, overflow="fold")
    for row in rows:
        table.add_row(*(_cell(get(row)) for _, get in columns))
    _out.print(table)


def _show(
    found: Iterator[dict[str, Any]], output: Output, every: bool, columns: Sequence[Column]
) -> None:
    def render(page: dict[str, Any], first: bool) -> None:
        _render(output, page, columns, header=first)

    show_pages(found, as_json=output is Output.json, every=every, render=render, err=_err)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    text = str(value)
    if _ISO_TIME.fullmatch(text):  # 2025-01-31T12:00:00.123456Z → 2025-01-31 12:00:00Z
        return text[:10] + " " + text[11:19] + "Z"
    return text


def _col(name: str, field: str | None = None) -> Column:
    return (name, lambda row: row.get(field or name.lower()))


def _key_lifetime_cell(row: dict[str, Any]) -> str:
    longest = row.get("max_key_lifetime")
    return "-" if longest is None else lifetime_text(longest)


TEAM_COLUMNS = [
    _col("ID"),
    _col("Name"),
    _col("Description"),
    ("Max key lifetime", _key_lifetime_cell),
    _col("Created", "created_at"),
]


def user_columns(names: Names | None = None) -> list[Column]:
    team = names.column("Team", "team_id") if names else _col("Team", "team_id")
    return [_col("ID"), _col("Name"), _col("Email"), _col("Role"), team]


def key_columns(names: Names | None = None) -> list[Column]:
    user = names.column("User", "user_id") if names else _col("User", "user_id")
    team = names.column("Team", "team_id") if names else _col("Team", "team_id")
    return [
        _col("ID"),
        _col("Name"),
        _col("Key", "display"),
        _col("State"),
        user,
        team,
        (
            "Models",
            lambda r: "all" if r["allowed_models"] is None else ", ".join(r["allowed_models"]),
        ),
        _col("Expires", "expires_at"),
        _col("Last used", "last_used_at"),
    ]


def audit_columns(names: Names) -> list[Column]:
    return [
        _col("At", "at"),
        names.column("Actor", "actor_key_id"),
        _col("Action"),
        names.column("Target", "target_id"),
        _col("From", "address"),
        ("Changes", lambda r: ", ".join(sorted(r["changes"]))),
    ]


USER_COLUMNS = user_columns()
KEY_COLUMNS = key_columns()


def seconds(text: str, option: str, *, at_least: int = 0, at_most: int | None = None) -> int:
    """``90s``, ``30m``, ``12h``, ``7d`` or ``2w`` in seconds, within the bounds given."""
    match = re.fullmatch(r"(\d{1,6})([smhdw])", text.strip())
    if match is None:
        raise typer.BadParameter(
            f"expected a duration like 30m, 12h or 7d, got {text!r}", param_hint=option
        )
    value = int(match[1]) * {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}[match[2]]
    if value < at_least:
        raise typer.BadParameter(
            f"{text} is too short: at least {at_least // 60}m, e.g. 1h or 30d", param_hint=option
        )
    if at_most is not None and value > at_most:
        days = at_most // 86400
        raise typer.BadParameter(f"{text} is too long: at most {days}d", param_hint=option)
    return value


def key_lifetime(text: str) -> int | None:
    """``--max-key-lifetime``: a duration (``90d``), or ``none`` for no team maximum."""
    if text.strip().lower() == "none":
        return None
    return seconds(text, "--max-key-lifetime", at_least=MIN_LIFETIME, at_most=MAX_LIFETIME)


def _part(ref: str) -> str:
    """``ref`` as one URL path segment, whatever characters it holds."""
    return urllib.parse.quote(ref, safe="@")


def named(positional: str | None, option: str | None, example: str) -> str:
    """The name given either way (``add Ada`` or ``add --name Ada``); a clear error otherwise."""
    if positional and option and positional != option:
        raise typer.BadParameter(f"two names given: {positional!r} and {option!r}; give one")
    chosen = option or positional
    if not chosen:
        raise typer.BadParameter(f"a name is needed, e.g. {example}", param_hint="--name")
    return chosen


def confirm(yes: bool, question: str) -> None:
    if not yes and not typer.confirm(question, default=False):
        raise typer.Exit(1)


# -- teams -----------------------------------------------------------------------------------


LifetimeOpt = Annotated[
    str | None,
    typer.Option(
        "--max-key-lifetime",
        help="Longest a new key of the team may live, e.g. 90d (none: no maximum).",
        show_default=False,
    ),
]


@team_app.command("create")
def team_create(
    name: Annotated[str, typer.Argument(help="Lower-case letters, digits and hyphens.")],
    *,
    description: Annotated[str, typer.Option(help="What the team is for.")] = "",
    max_key_lifetime: LifetimeOpt = None,
    url: UrlOpt = None,
    api_key: KeyOpt = None,
    output: OutOpt = Output.table,
) -> None:
    """Create a team."""
    body: dict[str, Any] = {"name": name, "description": description}
    if max_key_lifetime is not None:
        body["max_key_lifetime"] = key_lifetime(max_key_lifetime)
    with reporting(), _client(url, api_key) as api:
        _render(output, api.post("/teams", body), TEAM_COLUMNS)


@team_app.command("update")
def team_update(
    team: Annotated[str, typer.Argument(help="Team name or id.")],
    *,
    description: Annotated[
        str | None, typer.Option(help="What the team is for.", show_default=False)
    ] = None,
    max_key_lifetime: LifetimeOpt = None,
    url: UrlOpt = None,
    api_key: KeyOpt = None,
    output: OutOpt = Output.table,
) -> None:
    """Change a team's description or maximum key lifetime (existing keys keep theirs)."""
    body: dict[str, Any] = {} if description is None else {"description": description}
    if max_key_lifetime is not None:
        body["max_key_lifetime"] = key_lifetime(max_key_lifetime)
    if not body:
        raise typer.BadParameter("nothing to change: give --description or --max-key-lifetime")
    with reporting(), _client(url, api_key) as api:
        _render(output, api.patch(f"/teams/{_part(team)}", body), TEAM_COLUMNS)


@team_app.command("list")
def team_list(
    *,
    prefix: PrefixOpt = None,
    limit: LimitOpt = 100,
    all_: PagesOpt = False,
    url: UrlOpt = None,
    api_key: KeyOpt = None,
    output: OutOpt = Output.table,
) -> None:
    """List the teams you can see, by name."""
    with reporting(), _client(url, api_key) as api:
        found = pages(api, "/teams", {"name_prefix": prefix}, limit=limit, every=all_)
        _show(found, output, all_, TEAM_COLUMNS)


@team_app.command("show")
def team_show(
    team: Annotated[str, typer.Argument(help="Team name or id.")],
    url: UrlOpt = None,
    api_key: KeyOpt = None,
    output: OutOpt = Output.table,
) -> None:
    """Show a team and its members."""
    with reporting(), _client(url, api_key) as api:
        _render(output, api.get(f"/teams/{_part(team)}"), TEAM_COLUMNS)
        if output is Output.table:
            _render(output, api.get("/users", {"team": team}), user_columns(Names(api)))


@team_app.command("delete")
def team_delete(
    team: Annotated[str, typer.Argument(help="Team name or id.")],
    *,
    force: Annotated[bool, typer.Option(help="Also remove its users and revoke its keys.")] = False,
    yes: YesOpt = False,
    url: UrlOpt = None,
    api_key: KeyOpt = None,
    output: OutOpt = Output.table,
) -> None:
    """Delete a team (its records stay in the audit log)."""
    confirm(yes, f"Delete team {team}{' with its users and keys' if force else ''}?")
    with reporting(), _client(url, api_key) as api:
        _render(output, api.delete(f"/teams/{_part(team)}", {"force": force}), TEAM_COLUMNS)


# -- users -----------------------------------------------------------------------------------


@user_app.command("add")
def user_add(
    name: Annotated[
        str | None, typer.Argument(help="The person's name (or --name).", show_default=False)
    ] = None,
    *,
    name_option: Annotated[
        str | None, typer.Option("--name", help="The person's name.", show_default=False)
    ] = None,
    email: Annotated[str | None, typer.Option(help="E-mail (unique).")] = None,
    team: Annotated[str | None, typer.Option(help="Team name or id (default: yours).")] = None,
    role: Annotated[Role, typer.Option(help="What their keys may do.")] = Role.DEVELOPER,
    url: UrlOpt = None,
    api_key: KeyOpt = None,
    output: OutOpt = Output.table,
) -> None:
    """Add a user to a team."""
    who = named(name, name_option, "--name Ada")
    body = {"name": who, "email": email, "team": team, "role": role.value}
    with reporting(), _client(url, api_key) as api:
        _render(output, api.post("/users", body), USER_COLUMNS)


@user_app.command("list")
def user_list(
    team: Annotated[str | None, typer.Option(help="Only this team (name or id).")] = None,
    *,
    prefix: PrefixOpt = None,
    limit: LimitOpt = 100,
    all_: PagesOpt = False,
    url: UrlOpt = None,
    api_key: KeyOpt = None,
    output: OutOpt = Output.table,
) -> None:
    """List users, by name."""
    params = {"team": team, "name_prefix": prefix}
    with reporting(), _client(url, api_key) as api:
        found = pages(api, "/users", params, limit=limit, every=all_)
        _show(found, output, all_, user_columns(Names(api)))


@user_app.command("set-role")
def user_set_role(
    user: Annotated[str, typer.Argument(help="User id or e-mail.")],
    role: Annotated[Role, typer.Argument(help="The new role.")],
    url: UrlOpt = None,
    api_key: KeyOpt = None,
    output: OutOpt = Output.table,
) -> None:
    """Change a user's role (applies to their keys within seconds)."""
    with reporting(), _client(url, api_key) as api:
        _render(output, api.patch(f"/users/{_part(user)}", {"role": role.value}), USER_COLUMNS)


@user_app.command("remove")
def user_remove(
    user: Annotated[str, typer.Argument(help="User id or e-mail.")],
    yes: YesOpt = False,
    url: UrlOpt = None,
    api_key: KeyOpt = None,
    output: OutOpt = Output.table,
) -> None:
    """Remove a user and revoke their keys."""
    confirm(yes, f"Remove {user} and revoke their keys?")
    with reporting(), _client(url, api_key) as api:
        _render(output, api.delete(f"/users/{_part(user)}"), USER_COLUMNS)


# -- keys ------------------------------------------------------------------------------------


@key_app.command("create")
def key_create(
    name: Annotated[
        str | None,
        typer.Argument(
            help="What the key is for, e.g. laptop or ci (or --name).", show_default=False
        ),
    ] = None,
    *,
    name_option: Annotated[
        str | None, typer.Option("--name", help="What the key is for.", show_default=False)
    ] = None,
    user: Annotated[str | None, typer.Option(help="Owner, id or e-mail (default: you).")] = None,
    team: Annotated[str | None, typer.Option(help="Team of a --service key.")] = None,
    service: Annotated[bool, typer.Option(help="A team key with no owner.")] = False,
    model: Annotated[
        list[str] | None, typer.Option(help="Allowed model (repeat); default all.")
    ] = None,
    expires: Annotated[str | None, typer.Option(help="Lifetime, e.g. 30d or 12h.")] = None,
    url: UrlOpt = None,
    api_key: KeyOpt = None,
    output: OutOpt = Output.table,
) -> None:
    """Create an API key; the key is printed once — store it now."""
    label = named(name, name_option, "--name laptop")
    body: dict[str, Any] = {"name": label, "user": user, "team": team, "service": service}
    body["allowed_models"] = model or None
    body["expires_in"] = (
        None
        if expires is None
        else seconds(expires, "--expires", at_least=MIN_LIFETIME, at_most=MAX_LIFETIME)
    )
    with reporting(), _client(url, api_key) as api:
        created = api.post("/keys", body)
    _show_secret(output, created)


@key_app.command("list")
def key_list(
    *,
    team: Annotated[str | None, typer.Option(help="Only this team's keys.")] = None,
    user: Annotated[str | None, typer.Option(help="Only this user's keys.")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Include revoked and expired keys.")] = False,
    state: Annotated[str | None, typer.Option(help="Only active, revoked or expired keys.")] = None,
    prefix: PrefixOpt = None,
    limit: LimitOpt = 100,
    every: KeyPagesOpt = False,
    url: UrlOpt = None,
    api_key: KeyOpt = None,
    output: OutOpt = Output.table,
) -> None:
    """List API keys, newest first (shown by prefix and last four characters only)."""
    params = {
        "team": team,
        "user": user,
        "include_inactive": all_,
        "state": state,
        "name_prefix": prefix,
    }
    with reporting(), _client(url, api_key) as api:
        found = pages(api, "/keys", params, limit=limit, every=every)
        _show(found, output, every, key_columns(Names(api)))


@key_app.command("revoke")
def key_revoke(
    key_id: Annotated[str, typer.Argument(help="The key's id (key_…), from `corral key list`.")],
    url: UrlOpt = None,
    api_key: KeyOpt = None,
    output: OutOpt = Output.table,
) -> None:
    """Revoke an API key: it stops working everywhere within seconds."""
    with reporting(), _client(url, api_key) as api:
        _render(output, api.post(f"/keys/{_part(key_id)}/revoke"), KEY_COLUMNS)


@key_app.command("rotate")
def key_rotate(
    key_id: Annotated[str, typer.Argument(help="The key's id (key_…).")],
    grace: Annotated[str | None, typer.Option(help="Keep the old key working this long.")] = None,
    url: UrlOpt = None,
    api_key: KeyOpt = None,
    output: OutOpt = Output.table,
) -> None:
    """Replace a key by a new one with the same owner, models and expiry."""
    body = {"grace_seconds": 0 if grace is None else seconds(grace, "--grace", at_most=MAX_GRACE)}
    with reporting(), _client(url, api_key) as api:
        rotated = api.post(f"/keys/{_part(key_id)}/rotate", body)
    if output is Output.table:
        _err.print(_retired(rotated["old"], rotated["new"]))
    _show_secret(output, rotated if output is Output.json else rotated["new"])


def _retired(old: dict[str, Any], new: dict[str, Any]) -> str:
    """What happened to the old key, in words: kept for a grace period, or revoked now."""
    if old["state"] == "active":
        until = _cell(old.get("expires_at"))
        return f"new key {new['id']} is active; old key {old['id']} keeps working until {until}"
    return f"new key {new['id']} is active; old key {old['id']} is {old['state']} now"


def _show_secret(output: Output, data: dict[str, Any]) -> None:
    if output is Output.json:
        print(json.dumps(data, indent=2))
        return
    _render(output, data, KEY_COLUMNS)
    _err.print("[yellow]Store this key now; Corral cannot show it again:[/]")
    print(data["key"])


# -- audit -----------------------------------------------------------------------------------


AuditSince = Annotated[str, typer.Option(help="From this long ago (24h, 7d) or an ISO time.")]


@audit_app.command("list")
def audit_list(
    *,
    since: AuditSince = "24h",
    action: Annotated[str | None, typer.Option(help="e.g. key.revoke")] = None,
    actor: Annotated[str | None, typer.Option(help="Key id that made the change.")] = None,
    team: Annotated[str | None, typer.Option(help="Team name or id.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 100,
    url: UrlOpt = None,
    api_key: KeyOpt = None,
    output: OutOpt = Output.table,
) -> None:
    """List recent admin changes, newest first."""
    params = {"since": since, "action": action, "actor": actor, "team": team, "limit": limit}
    with reporting(), _client(url, api_key) as api:
        _render(output, api.get("/audit", params), audit_columns(Names(api)))


@audit_app.command("export")
def audit_export(
    since: AuditSince = "30d",
    team: Annotated[str | None, typer.Option(help="Team name or id.")] = None,
    url: UrlOpt = None,
    api_key: KeyOpt = None,
) -> None:
    """Write audit entries as JSON lines, oldest first, to standard output."""
    with reporting(), _client(url, api_key) as api:
        for line in api.lines("/audit/export", {"since": since, "team": team}):
            sys.stdout.write(line + "\n")

"""The admin CLI against a real server: every command, JSON output, and clear failure messages."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner, Result

from corral.cli.admin import register
from corral.store.migrate import head
from integration.admin.harness import AdminServer


def cli() -> typer.Typer:
    app = typer.Typer()
    register(app)
    return app


class Corral:
    """Runs `corral ...` admin commands in-process against one server with one key."""

    def __init__(self, url: str, key: str | None, tmp_path: Path) -> None:
        self.env = {
            "CORRAL_URL": url,
            "CORRAL_API_KEY": key or "",
            "CORRAL_CLI_CONFIG": str(tmp_path / "no-cli-config.yaml"),
            "COLUMNS": "200",
        }
        self.app = cli()

    def __call__(self, *args: str, code: int = 0, **env: str) -> Result:
        result = CliRunner().invoke(self.app, list(args), env={**self.env, **env})
        assert result.exit_code == code, (result.stdout, result.stderr, result.exception)
        assert "Traceback" not in result.output
        return result

    def json(self, *args: str) -> Any:
        return json.loads(self(*args, "--output", "json").stdout)


@pytest.fixture
def corral(admin_server: AdminServer, tmp_path: Path) -> Corral:
    return Corral(admin_server.url, admin_server.bootstrap_key, tmp_path)


def test_teams_users_and_keys_from_the_command_line(
    corral: Corral, admin_server: AdminServer, tmp_path: Path
) -> None:
    assert "search" in corral("team", "create", "search", "--description", "Ranking").stdout
    corral(
        "user",
        "add",
        "Ada Lovelace",
        "--email",
        "ada@example.com",
        "--team",
        "search",
        "--role",
        "team-admin",
    )
    corral("user", "add", "Dev", "--email", "dev@example.com", "--team", "search")
    users = corral.json("user", "list", "--team", "search")
    assert [u["email"] for u in users["data"]] == ["ada@example.com", "dev@example.com"]
    shown = corral("team", "show", "search").stdout
    assert "Ranking" in shown
    assert "ada@example.com" in shown
    created = corral(
        "key", "create", "laptop", "--user", "ada@example.com", "--model", "m1", "--expires", "30d"
    )
    secret = created.stdout.strip().splitlines()[-1]
    assert secret.startswith("ck-")
    assert "Store this key now" in created.stderr
    as_ada = Corral(admin_server.url, secret, tmp_path)
    mine = as_ada.json("key", "list")
    assert [k["allowed_models"] for k in mine["data"]] == [["m1"]]
    assert secret not in as_ada("key", "list").stdout
    corral("user", "set-role", "dev@example.com", "developer")
    rotated = as_ada.json("key", "rotate", mine["data"][0]["id"], "--grace", "1h")
    assert rotated["old"]["state"] == "active"
    assert rotated["new"]["key"].startswith("ck-")
    revoked = corral.json("key", "revoke", rotated["new"]["id"])
    assert revoked["state"] == "revoked"
    listed = corral.json("key", "list", "--team", "search", "--all")
    assert len(listed["data"]) == 2
    corral("user", "remove", "dev@example.com", "--yes")
    corral("team", "delete", "search", "--force", "--yes")
    assert [t["name"] for t in corral.json("team", "list")["data"]] == ["platform"]


def test_a_team_maximum_key_lifetime_from_the_command_line(corral: Corral) -> None:
    corral("team", "create", "capped", "--max-key-lifetime", "90d")
    assert corral.json("team", "show", "capped")["max_key_lifetime"] == 90 * 86400
    assert "90d" in corral("team", "list").stdout
    assert "30d" in corral("team", "update", "capped", "--max-key-lifetime", "30d").stdout
    corral("user", "add", "Cap", "--email", "cap@example.com", "--team", "capped")
    too_long = corral("key", "create", "k", "--user", "cap@example.com", "--expires", "31d", code=2)
    assert "at most 30d" in too_long.stderr
    removed = corral.json("team", "update", "capped", "--max-key-lifetime", "none")
    assert removed["max_key_lifetime"] is None


def test_lists_page_with_limit_and_stream_every_page_with_all(corral: Corral) -> None:
    for n in range(5):
        corral("team", "create", f"squad-{n}")
    first = corral.json("team", "list", "--prefix", "squad-", "--limit", "2")
    assert [t["name"] for t in first["data"]] == ["squad-0", "squad-1"]
    assert first["has_more"] is True
    assert "--all" in corral("team", "list", "--prefix", "squad-", "--limit", "2").stderr
    streamed = corral("team", "list", "--prefix", "squad-", "--limit", "2", "--all", "-o", "json")
    names = [json.loads(line)["name"] for line in streamed.stdout.splitlines()]
    assert names == [f"squad-{n}" for n in range(5)]
    table = corral("team", "list", "--prefix", "squad-", "--limit", "2", "--all").stdout
    assert all(f"squad-{n}" in table for n in range(5))
    for n in range(3):
        corral("key", "create", f"ci-{n}", "--service", "--team", "squad-0")
    keys = corral("key", "list", "--team", "squad-0", "--limit", "1", "--all-pages", "-o", "json")
    assert sorted(json.loads(line)["name"] for line in keys.stdout.splitlines()) == [
        "ci-0",
        "ci-1",
        "ci-2",
    ]


def test_the_audit_log_from_the_command_line(corral: Corral) -> None:
    corral("team", "create", "audited")
    table = corral("audit", "list", "--since", "1h").stdout
    assert "team.create" in table
    entries = corral.json("audit", "list", "--since", "24h", "--action", "team.create")
    assert [e["action"] for e in entries["data"]] == ["team.create", "team.create"]
    exported = [
        json.loads(line) for line in corral("audit", "export", "--since", "1d").stdout.splitlines()
    ]
    assert exported[-1]["target_id"] == entries["data"][0]["target_id"]


def test_refusals_are_one_clear_line(
    corral: Corral, admin_server: AdminServer, tmp_path: Path
) -> None:
    bad_name = corral("team", "create", "Not Valid", code=2)
    assert "field: name" in bad_name.stderr
    wrong_key = corral("team", "list", code=2, CORRAL_API_KEY="ck-" + "x" * 32)
    assert "not valid" in wrong_key.stderr
    assert "CORRAL_API_KEY" in wrong_key.stderr
    created = corral.json("key", "create", "dev-key")
    developer = Corral(admin_server.url, created["key"], tmp_path)
    corral("user", "add", "Dev", "--email", "d@example.com")
    dev_key = corral.json("key", "create", "k", "--user", "d@example.com")
    as_dev = Corral(admin_server.url, dev_key["key"], tmp_path)
    denied = as_dev("team", "create", "mine", code=2)
    assert "not allowed" in denied.stderr
    assert developer("team", "list").exit_code == 0
    missing = corral("key", "revoke", "key_doesnotexist", code=2)
    assert "no key with id" in missing.stderr
    no_key = corral("team", "list", code=2, CORRAL_API_KEY="")
    assert "no API key" in no_key.stderr


def test_an_unreachable_server_is_explained(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    corral = Corral(f"http://127.0.0.1:{port}", "ck-" + "k" * 32, tmp_path)
    result = corral("team", "list", code=2)
    assert "cannot reach Corral" in result.stderr
    assert "corral up" in result.stderr


def test_url_and_key_can_come_from_the_cli_config_file(
    admin_server: AdminServer, tmp_path: Path
) -> None:
    config = tmp_path / "cli.yaml"
    config.write_text(f"url: {admin_server.url}\napi_key: {admin_server.bootstrap_key}\n")
    result = CliRunner().invoke(
        cli(),
        ["team", "list", "-o", "json"],
        env={"CORRAL_CLI_CONFIG": str(config), "CORRAL_URL": None, "CORRAL_API_KEY": None},
    )
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["data"][0]["name"] == "platform"


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def test_db_commands_migrate_the_configured_database_locally(
    kind: str, tmp_path: Path, make_database: Callable[[str], Awaitable[str]]
) -> None:
    config = tmp_path / "corral.yaml"
    if kind == "sqlite":
        config.write_text(f"data_dir: {tmp_path / 'data'}\n")
    else:
        config.write_text(f"store:\n  database_url: {await make_database('postgres')}\n")
    runner, app = CliRunner(), cli()

    async def run(*args: str) -> Result:
        # The CLI runs its own event loop (asyncio.run), so it gets a thread of its own here.
        return await asyncio.to_thread(runner.invoke, app, [*args, "--config", str(config)])

    behind = await run("db", "downgrade", "--revision", "base", "--yes")
    assert behind.exit_code == 0, behind.stderr
    stale = await run("db", "current")
    assert stale.exit_code == 2
    assert "corral db upgrade" in stale.stderr
    upgraded = await run("db", "upgrade")
    assert upgraded.exit_code == 0, upgraded.stderr
    assert f"revision {head()}" in upgraded.stderr
    current = await run("db", "current")
    assert current.stdout.startswith(head())

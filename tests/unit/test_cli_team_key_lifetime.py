"""`corral team create|update --max-key-lifetime`: durations parsed like `--expires`, or none."""

from __future__ import annotations

import pytest
import typer
from typer.testing import CliRunner

from corral.admin.schemas import MAX_LIFETIME, MIN_LIFETIME
from corral.cli.admin import TEAM_COLUMNS, key_lifetime, register


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90d", 90 * 86400), ("12h", 12 * 3600), ("2w", 14 * 86400), ("none", None), ("None", None)],
)
def test_a_lifetime_is_a_duration_or_none(text: str, seconds: int | None) -> None:
    assert key_lifetime(text) == seconds


@pytest.mark.parametrize(
    ("text", "says"), [("90", "like 30m"), ("30s", "too short"), ("2000d", "too long")]
)
def test_a_bad_lifetime_names_the_fix(text: str, says: str) -> None:
    with pytest.raises(typer.BadParameter, match=says) as refused:
        key_lifetime(text)
    assert refused.value.param_hint == "--max-key-lifetime"


def test_the_bounds_are_the_admin_apis() -> None:
    assert key_lifetime(f"{MIN_LIFETIME}s") == MIN_LIFETIME
    assert key_lifetime(f"{MAX_LIFETIME // 86400}d") == MAX_LIFETIME


@pytest.mark.parametrize(
    "args",
    [
        ["team", "create", "g", "--max-key-lifetime", "soon"],
        ["team", "update", "g", "--max-key-lifetime", "soon"],
        ["team", "update", "g"],
    ],
)
def test_bad_input_stops_before_any_request(args: list[str]) -> None:
    app = typer.Typer()
    register(app)
    env = {"CORRAL_URL": "http://127.0.0.1:9", "CORRAL_API_KEY": "ck-x"}
    result = CliRunner().invoke(app, args, env=env)
    assert result.exit_code == 2
    assert "--max-key-lifetime" in result.output


def test_the_team_table_shows_the_maximum_as_a_duration() -> None:
    cell = dict(TEAM_COLUMNS)["Max key lifetime"]
    assert cell({"max_key_lifetime": 90 * 86400}) == "90d"
    assert cell({"max_key_lifetime": 5400}) == "90m"
    assert cell({"max_key_lifetime": None}) == "-"

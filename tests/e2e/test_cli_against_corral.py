"""The `corral` command against a running Corral, as a user types it (one process per command)."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator

import httpx
import pytest

from support.processes import CORRAL, CorralProcess, corral_up, free_port

CHAT = {"model": "fake-chat", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture(scope="module")
def corral(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CorralProcess]:
    tmp = tmp_path_factory.mktemp("cli")
    path = tmp / "corral.yaml"
    # A long reload interval: a limit that applies at once was applied by the admin API's hook.
    path.write_text(
        f"""data_dir: {tmp / "data"}
server: {{port: {free_port()}, drain_grace: 0}}
logging: {{access_log: false}}
limits: {{refresh_interval: 600}}
models:
  - name: fake-chat
    aliases: [chat]
    engine: {{kind: fake, tokens: 2}}
    pricing: {{input_per_1m: 0.5, output_per_1m: 1.5}}
  - name: fake-other
    engine: {{kind: fake, tokens: 2}}
"""
    )
    with corral_up(path) as running:
        assert running.key is not None
        yield running


def run(
    corral: CorralProcess, *args: str, url: str | None = None, key: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "CORRAL_URL": url or corral.url,
        "CORRAL_API_KEY": key or corral.key or "",
        "CORRAL_CLI_CONFIG": "/nonexistent/cli.yaml",
        "COLUMNS": "200",
    }
    return subprocess.run(
        [CORRAL, *args], capture_output=True, text=True, timeout=60, env=env, check=False
    )


def ok(
    corral: CorralProcess, *args: str, url: str | None = None
) -> subprocess.CompletedProcess[str]:
    result = run(corral, *args, url=url)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def test_budget_set_changes_only_what_it_is_given(corral: CorralProcess) -> None:
    ok(corral, "team", "create", "patch")
    ok(corral, "budget", "set", "--team", "patch", "--rpm", "600", "--tpm", "9000")
    after = json.loads(
        ok(corral, "budget", "set", "--team", "patch", "--monthly-usd", "500", "-o", "json").stdout
    )
    assert after["limits"] == {
        "rpm": 600,
        "tpm": 9000,
        "max_concurrent": None,
        "monthly_budget_usd": 500.0,
    }
    cleared = json.loads(
        ok(corral, "budget", "set", "--team", "patch", "--clear-rpm", "-o", "json").stdout
    )
    assert cleared["limits"]["rpm"] is None
    assert cleared["limits"]["tpm"] == 9000
    both = run(corral, "budget", "set", "--team", "patch", "--rpm", "5", "--clear-rpm")
    assert both.returncode == 2
    assert "not both" in both.stderr


def test_a_new_limit_applies_at_once_in_the_process_that_took_it(corral: CorralProcess) -> None:
    ok(corral, "team", "create", "quick")
    ok(corral, "user", "add", "--name", "Q", "--email", "q@example.com", "--team", "quick")
    made = ok(corral, "key", "create", "--name", "q", "--user", "q@example.com", "-o", "json")
    key = json.loads(made.stdout)["key"]
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=corral.url, headers=headers, timeout=10) as http:
        assert http.post("/v1/chat/completions", json=CHAT).status_code == 200
        ok(corral, "budget", "set", "--team", "quick", "--rpm", "1")
        assert http.post("/v1/chat/completions", json=CHAT).status_code == 200  # the one
        refused = http.post("/v1/chat/completions", json=CHAT)
    assert refused.status_code == 429  # the reload interval is 600 s: applied by the change
    assert refused.json()["error"]["code"] == "rate_limit_exceeded"
    assert "team 'quick' (team_" in refused.json()["error"]["message"]  # name and id


def test_corral_url_may_be_the_api_base_the_welcome_prints(corral: CorralProcess) -> None:
    listed = ok(corral, "team", "list", "-o", "json", url=corral.url + "/v1/")
    assert "platform" in [t["name"] for t in json.loads(listed.stdout)["data"]]
    endpoints = ok(corral, "endpoints", "-o", "json", url=corral.url + "/v1")
    assert {row["model"] for row in json.loads(endpoints.stdout)} == {"fake-chat", "fake-other"}


def test_top_prints_one_snapshot_when_not_on_a_terminal(corral: CorralProcess) -> None:
    shown = ok(corral, "top")
    assert "corral top" in shown.stdout
    assert f"{corral.url}/metrics" in " ".join(shown.stdout.split())
    assert "Models" in shown.stdout


def test_usage_formats(corral: CorralProcess) -> None:
    as_json = json.loads(ok(corral, "usage", "--since", "1h", "-o", "json").stdout)
    assert isinstance(as_json["data"], list)
    xml = run(corral, "usage", "--format", "xml")
    assert xml.returncode == 2
    assert "'xml' is not one of 'table', 'csv', 'json'" in " ".join(xml.stderr.split())


def test_key_rotation_with_grace_says_the_old_key_keeps_working(corral: CorralProcess) -> None:
    made = json.loads(ok(corral, "key", "create", "--name", "rot", "-o", "json").stdout)
    rotated = ok(corral, "key", "rotate", made["id"], "--grace", "1h")
    said = " ".join(rotated.stderr.split())
    assert f"old key {made['id']} keeps working until" in said
    assert "is now active" not in said
    short = run(corral, "key", "create", "--name", "short", "--expires", "20s")
    assert short.returncode == 2
    assert "20s is too short: at least 1m" in " ".join(short.stderr.split())
    assert "expires_in" not in short.stderr


def test_an_allow_list_may_name_an_alias_and_other_models_are_403(corral: CorralProcess) -> None:
    made = ok(corral, "key", "create", "--name", "alias", "--model", "chat", "-o", "json")
    headers = {"Authorization": f"Bearer {json.loads(made.stdout)['key']}"}
    with httpx.Client(base_url=corral.url, headers=headers, timeout=10) as http:
        for name in ("chat", "fake-chat"):
            answered = http.post("/v1/chat/completions", json={**CHAT, "model": name})
            assert answered.status_code == 200, answered.text
        assert [m["id"] for m in http.get("/v1/models").json()["data"]] == ["fake-chat"]
        assert http.get("/v1/models/chat").status_code == 200
        refused = http.post("/v1/chat/completions", json={**CHAT, "model": "fake-other"})
        assert refused.status_code == 403
        assert refused.json()["error"]["code"] == "model_not_allowed"
        assert "fake-chat" in refused.json()["error"]["message"]
        assert http.get("/v1/models/fake-other").status_code == 403
        missing = http.post("/v1/chat/completions", json={**CHAT, "model": "no-such"})
        assert missing.status_code == 404


def test_lists_show_names_beside_ids(corral: CorralProcess) -> None:
    ok(corral, "team", "create", "named")
    ok(corral, "user", "add", "--name", "Nia", "--email", "nia@example.com", "--team", "named")
    made = json.loads(
        ok(
            corral,
            "key",
            "create",
            "--name",
            "nia-laptop",
            "--user",
            "nia@example.com",
            "-o",
            "json",
        ).stdout
    )
    team_id = made["team_id"]
    users = ok(corral, "user", "list", "--team", "named").stdout
    assert f"named ({team_id})" in users
    keys = ok(corral, "key", "list", "--team", "named").stdout
    assert f"Nia ({made['user_id']})" in keys
    audit = ok(corral, "audit", "list", "--since", "1h").stdout
    assert f"nia-laptop ({made['id']})" in audit  # the key's creation, its target by name
    assert "bootstrap (key_" in audit  # the actor: the admin's key, by name
    limits = ok(corral, "budget", "set", "--team", "named", "--rpm", "100").stdout
    assert f"named ({team_id})" in limits

"""The first start of `corral up`: a busy port, a restart's welcome, and a lost admin key."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

import httpx

from corral.composition.up import welcome_text
from support.processes import CORRAL, corral_up, free_port

CHAT = {"model": "fake-chat", "messages": [{"role": "user", "content": "hi"}]}


def config(tmp_path: Path, port: int) -> Path:
    path = tmp_path / "corral.yaml"
    path.write_text(
        f"""data_dir: {tmp_path / "data"}
server: {{port: {port}, drain_grace: 0}}
logging: {{access_log: false}}
models:
  - name: fake-chat
    engine: {{kind: fake, tokens: 2}}
"""
    )
    return path


def corral_command(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CORRAL, *args], capture_output=True, text=True, timeout=120, check=False)


def chat(url: str, key: str) -> int:
    headers = {"Authorization": f"Bearer {key}"}
    return httpx.post(f"{url}/v1/chat/completions", json=CHAT, headers=headers).status_code


def test_a_busy_port_is_one_clear_line_and_costs_no_admin_key(tmp_path: Path) -> None:
    port = free_port()
    path = config(tmp_path, port)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        refused = corral_command("up", "--config", str(path))
    said = " ".join((refused.stdout + refused.stderr).split())
    assert refused.returncode == 2
    assert f"port {port} on 127.0.0.1 is already in use" in said
    assert "corral up --port" in said
    assert "Errno" not in said
    assert "Traceback" not in said
    with corral_up(path) as corral:  # the port is free now: this is still the first start
        assert corral.key is not None
        assert chat(corral.url, corral.key) == 200


def test_an_engine_that_fails_to_start_costs_no_admin_key(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text(
        f"""data_dir: {tmp_path / "data"}
server: {{port: {free_port()}}}
models:
  - name: broken
    engine: {{kind: local, model: {tmp_path / "no-such-model"}}}
"""
    )
    failed = corral_command("up", "--config", str(broken))
    assert failed.returncode == 2
    assert "Could not find the model" in failed.stdout + failed.stderr
    with corral_up(config(tmp_path, free_port())) as corral:  # the same store, now working
        assert corral.key is not None
        assert chat(corral.url, corral.key) == 200


def test_a_lost_admin_key_is_reset_locally_and_audited(tmp_path: Path) -> None:
    path = config(tmp_path, free_port())
    with corral_up(path) as first:
        lost = first.key
        assert lost is not None
    with corral_up(path) as again:
        assert again.key is None  # shown once only
        welcome = again.text()
        assert "'$CORRAL_API_KEY" not in welcome  # single quotes: the shell would not expand it
        assert '"Authorization: Bearer $CORRAL_API_KEY"' in welcome
        assert 'os.environ["CORRAL_API_KEY"]' in welcome
        assert "corral admin key --reset" in welcome
        reset = corral_command("admin", "key", "--reset", "--config", str(path), "--yes")
        assert reset.returncode == 0, reset.stderr
        new = reset.stdout.strip().splitlines()[-1]
        assert new.startswith("ck-")
        deadline = time.monotonic() + 15  # the running server's key sync picks the change up
        while chat(again.url, new) != 200 or chat(again.url, lost) != 401:
            assert time.monotonic() < deadline, "the reset key did not replace the lost one"
            time.sleep(0.2)
        audit = httpx.get(
            f"{again.url}/admin/v1/audit",
            params={"since": "1h"},
            headers={"Authorization": f"Bearer {new}"},
        ).json()["data"]
        by_reset = {entry["action"] for entry in audit if entry["actor_key_id"] == "local-reset"}
        assert by_reset == {"key.create", "key.revoke"}


def test_the_welcome_with_the_first_key_puts_it_in_both_snippets() -> None:
    text = welcome_text("http://127.0.0.1:8000", ["m"], "m", "ck-abc")
    assert '-H "Authorization: Bearer ck-abc"' in text
    assert 'api_key="ck-abc"' in text
    assert "shown once" in text

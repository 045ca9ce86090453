"""The suite on a bare machine: services chosen or started in one place, clear skips otherwise."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from support import services

REPO = Path(__file__).resolve().parents[3]


def ignore_configured_services(monkeypatch: pytest.MonkeyPatch) -> None:
    """No configured URLs and no system servers; whatever the test exports is undone after."""
    for name in (services.PG_ENV, services.REDIS_ENV):
        monkeypatch.setenv(name, "")  # remembers the run's own value, restored after the test
        monkeypatch.delenv(name)
    monkeypatch.setenv(services.MODE_ENV, "throwaway")


def test_without_binaries_or_servers_the_service_tests_are_skipped_with_the_reason(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ignore_configured_services(monkeypatch)
    monkeypatch.setattr(services, "postgres_bin_dir", lambda: None)
    monkeypatch.setattr(services.shutil, "which", lambda _: None)
    servers = services.ThrowawayServers()
    choices = services.provide(servers, {"postgres", "redis"})
    assert [(c.service, c.url, c.origin) for c in choices] == [
        ("postgres", None, "skipped"),
        ("redis", None, "skipped"),
    ]
    assert "apt-get install postgresql" in choices[0].summary()
    assert "apt-get install redis-server" in choices[1].summary()


def test_throwaway_servers_start_on_free_ports_and_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    ignore_configured_services(monkeypatch)
    if services.postgres_bin_dir() is None or services.shutil.which("redis-server") is None:
        pytest.skip("Debian's postgresql and redis-server binaries are not installed")
    servers = services.ThrowawayServers()
    try:
        choices = services.provide(servers, {"postgres", "redis"})
        assert [c.origin for c in choices] == ["throwaway", "throwaway"]
        pg_host, pg_port = services.pg_host_port()
        redis_host, redis_port = services.redis_host_port()
        assert (pg_port, redis_port) != (5432, 6379)
        assert services.answers(pg_host, pg_port)
        assert services.answers(redis_host, redis_port)
    finally:
        servers.stop()
    assert not services.answers(pg_host, pg_port)


def test_portal_tests_are_skipped_not_errors_without_chromium() -> None:
    env = {**os.environ, "CORRAL_TEST_CHROMIUM": "/nonexistent/chromium"}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/e2e/portal"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:]
    assert "3 skipped" in result.stdout
    assert "/nonexistent/chromium not found" in result.stdout

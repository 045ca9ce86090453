"""Fixtures for admin API integration tests: a real server on loopback over each store backend."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from integration.admin.harness import AdminServer


@pytest.fixture
def admin_server(db_url: str) -> Iterator[AdminServer]:
    server = AdminServer(db_url).start()
    yield server
    server.stop()


@pytest.fixture
def admin_http(admin_server: AdminServer) -> Iterator[httpx.Client]:
    """An HTTP client for the server's admin API, authenticated with the bootstrap key."""
    headers = {"Authorization": f"Bearer {admin_server.bootstrap_key}"}
    with httpx.Client(base_url=admin_server.url + "/admin/v1", headers=headers, timeout=10) as http:
        yield http

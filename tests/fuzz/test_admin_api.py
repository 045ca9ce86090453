"""schemathesis against the admin API's own OpenAPI: no input gives a 5xx, every 4xx is an
OpenAI error envelope, and 2xx bodies match the documented schemas."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from corral.admin.app import build_admin_app
from corral.composition.web import build_web_app
from corral.store.usage_memory import InMemoryUsage
from fuzz.budget import DERANDOMIZE, EXAMPLES
from unit.admin.world import make_world

schemathesis = pytest.importorskip("schemathesis")
hypothesis = pytest.importorskip("hypothesis")

WORLD = asyncio.run(make_world())
ADMIN = build_admin_app(
    store=WORLD.store, keys=WORLD.sync, clock=WORLD.clock, usage_ledger=InMemoryUsage()
)
APP = build_web_app(lambda: True, {"/admin/v1": ADMIN})  # mounted as in a Corral process
ROLES = ("P", "T", "D")  # platform-admin, team-admin, developer
schema = schemathesis.openapi.from_asgi("/admin/v1/openapi.json", APP)


@schemathesis.check
def error_envelope(ctx: Any, response: Any, case: Any) -> bool | None:
    """Every refusal is ``{"error": {"message", "type", "param", "code"}}``."""
    if 400 <= response.status_code < 500:
        error = response.json()["error"]
        assert isinstance(error["message"], str)
        assert error["message"]
        assert isinstance(error["type"], str)
        assert {"param", "code"} <= set(error)
    return None


@schema.parametrize()
@hypothesis.settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(hypothesis.HealthCheck),
    derandomize=DERANDOMIZE,
    database=None,
)
@pytest.mark.parametrize("role", ROLES)
def test_no_input_breaks_the_admin_api(case: Any, role: str) -> None:
    case.headers = {**(case.headers or {}), "Authorization": f"Bearer {WORLD.secrets[role]}"}
    response = case.call()
    assert response.status_code < 500, f"{case.method} {case.formatted_path}: {response.text}"
    # schemathesis' default checks (documented status codes and response schemas, 405 with
    # Allow) and ours. Left out: the ones about a missing or bad key (every case here carries
    # a good one; tests/unit/admin covers those), and "valid data accepted" (random ids and
    # roles without the right are refused, as they should be).
    case.validate_response(
        response,
        additional_checks=[error_envelope],
        excluded_checks=[
            schemathesis.checks.ignored_auth,
            schemathesis.checks.missing_required_header,
            schemathesis.checks.positive_data_acceptance,
        ],
    )

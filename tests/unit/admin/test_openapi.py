"""The OpenAPI document is valid 3.1, public, and describes every operation from its models."""

from __future__ import annotations

import pytest

from corral.admin.app import operations
from corral.admin.policy import Action
from unit.admin.world import World


async def test_the_document_is_served_without_a_key_and_is_valid(world: World) -> None:
    validator = pytest.importorskip(
        "openapi_spec_validator", reason="test extra: openapi-spec-validator"
    )
    response = await world.http.get("/admin/v1/openapi.json")
    assert response.status_code == 200
    document = response.json()
    validator.validate(document)
    assert document["openapi"] == "3.1.0"
    assert document["servers"] == [{"url": "/admin/v1"}]


async def test_every_operation_is_documented_with_its_action_and_errors(world: World) -> None:
    document = (await world.http.get("/admin/v1/openapi.json")).json()
    for op in operations():
        described = document["paths"][op.path][op.method.lower()]
        assert described["x-corral-action"] == op.action.value
        assert {"400", "401", "403"} <= set(described["responses"])
        assert str(op.status) in described["responses"]
    assert {op.action for op in operations()} == set(Action)
    ids = [d["operationId"] for p in document["paths"].values() for d in p.values()]
    assert len(ids) == len(set(ids))


async def test_bodies_and_queries_come_from_the_pydantic_models(world: World) -> None:
    document = (await world.http.get("/admin/v1/openapi.json")).json()
    schemas = document["components"]["schemas"]
    team_create = schemas["TeamCreate"]
    assert team_create["required"] == ["name"]
    assert team_create["properties"]["name"]["pattern"].startswith("^[a-z0-9]")
    assert "key" in schemas["KeyCreated"]["properties"]
    assert "key_hash" not in str(schemas)
    audit = document["paths"]["/audit"]["get"]
    assert {p["name"] for p in audit["parameters"]} >= {"since", "limit", "before", "team"}
    rotate = document["paths"]["/keys/{key}/rotate"]["post"]
    assert [p["name"] for p in rotate["parameters"]] == ["key"]
    assert rotate["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "KeyRotate"
    )

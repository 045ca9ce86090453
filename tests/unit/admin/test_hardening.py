"""Hostile admin input: deep JSON, out-of-range times and integers are 400s, never 500s."""

from __future__ import annotations

import pytest

from unit.admin.world import World


def _envelope_400(response: object) -> dict[str, object]:
    assert response.status_code == 400, response.text  # type: ignore[attr-defined]
    error: dict[str, object] = response.json()["error"]  # type: ignore[attr-defined]
    assert error["type"] == "invalid_request_error"
    return error


@pytest.mark.parametrize("depth", [65, 1000, 5000])
async def test_deeply_nested_bodies_are_400(world: World, depth: int) -> None:
    raw = '{"name":"deep","description":' + "[" * depth + "]" * depth + "}"
    response = await world.http.post(
        "/admin/v1/teams",
        content=raw,
        headers={**world.auth("P"), "content-type": "application/json"},
    )
    assert "levels deep" in str(_envelope_400(response)["message"])


@pytest.mark.parametrize("path", ["/usage", "/usage.csv", "/audit", "/audit/export"])
@pytest.mark.parametrize("since", ["1e17", "-1", "nan", "inf", "9999-12-31T23:59:59-12:00"])
async def test_times_out_of_range_are_400(world: World, path: str, since: str) -> None:
    response = await world.http.get(
        f"/admin/v1{path}", params={"since": since}, headers=world.auth("P")
    )
    assert _envelope_400(response)["param"] == "since"


async def test_a_duration_longer_than_the_epoch_means_everything(world: World) -> None:
    response = await world.call("P", "GET", "/audit?since=999999w")
    assert response.status_code == 200


@pytest.mark.parametrize(
    "limits",
    [
        {"rpm": 2**63},
        {"tpm": 10**30},
        {"max_concurrent": 2**64},
        {"monthly_budget_usd": 1e300},
    ],
)
async def test_limits_beyond_what_the_store_holds_are_400(
    world: World, limits: dict[str, object]
) -> None:
    response = await world.call("P", "POST", "/teams/alpha/limits", limits)
    assert _envelope_400(response)["param"] == next(iter(limits))


async def test_a_cursor_beyond_int64_is_400(world: World) -> None:
    response = await world.call("P", "GET", f"/audit?before={2**63}")
    assert _envelope_400(response)["param"] == "before"


async def test_a_wrong_method_gets_405_listing_every_method_of_the_path(world: World) -> None:
    response = await world.http.put("/admin/v1/teams", headers=world.auth("P"))
    assert response.status_code == 405
    assert set(response.headers["allow"].replace(" ", "").split(",")) >= {"GET", "POST"}
    assert response.json()["error"]["type"] == "invalid_request_error"


async def test_body_integers_and_booleans_are_not_coerced_from_other_types(world: World) -> None:
    for body in ({"name": "k", "service": 0}, {"name": "k", "expires_in": "3600"}):
        response = await world.call("T", "POST", "/keys", body)
        assert response.status_code == 400, body
    limits = await world.call("P", "POST", "/teams/alpha/limits", {"rpm": "5"})
    assert _envelope_400(limits)["param"] == "rpm"

"""Every admin list pages by cursor (`?limit=`, `after=`) and filters by name prefix."""

from __future__ import annotations

import pytest

from unit.admin.world import World


async def _all_pages(world: World, path: str, limit: int) -> list[list[str]]:
    pages: list[list[str]] = []
    after: str | None = None
    while True:
        joiner = "&" if "?" in path else "?"
        cursor = "" if after is None else f"&after={after}"
        body = (await world.call("P", "GET", f"{path}{joiner}limit={limit}{cursor}")).json()
        pages.append([item["name"] for item in body["data"]])
        assert body["has_more"] is (body["next_after"] is not None)
        if not body["has_more"]:
            return pages
        after = body["next_after"]


async def test_keys_page_by_cursor_without_repeats_or_gaps(world: World) -> None:
    for n in range(5):
        assert (await world.call("P", "POST", "/keys", {"name": f"paged-{n}"})).status_code == 201
    everything = (await world.call("P", "GET", "/keys?limit=1000")).json()
    assert everything["has_more"] is False
    pages = await _all_pages(world, "/keys", 2)
    assert all(len(page) <= 2 for page in pages)
    assert [name for page in pages for name in page] == [k["name"] for k in everything["data"]]
    prefixed = (await world.call("P", "GET", "/keys?name_prefix=paged-&limit=3")).json()
    named = [k["name"] for k in everything["data"] if k["name"].startswith("paged-")]
    assert [k["name"] for k in prefixed["data"]] == named[:3]
    assert prefixed["has_more"] is True


async def test_keys_filter_by_state(world: World) -> None:
    made = (await world.call("P", "POST", "/keys", {"name": "gone"})).json()
    assert (await world.call("P", "POST", f"/keys/{made['id']}/revoke")).status_code == 200
    revoked = (await world.call("P", "GET", "/keys?state=revoked")).json()["data"]
    assert [k["id"] for k in revoked] == [made["id"]]
    active = (await world.call("P", "GET", "/keys?state=active")).json()["data"]
    assert made["id"] not in {k["id"] for k in active}


async def test_teams_and_users_page_by_name(world: World) -> None:
    for n in range(4):
        assert (await world.call("P", "POST", "/teams", {"name": f"zz-{n}"})).status_code == 201
    pages = await _all_pages(world, "/teams?name_prefix=zz-", 3)
    assert pages == [["zz-0", "zz-1", "zz-2"], ["zz-3"]]
    users = await _all_pages(world, "/users", 1)
    everyone = (await world.call("P", "GET", "/users")).json()["data"]
    assert [name for page in users for name in page] == [u["name"] for u in everyone]


@pytest.mark.parametrize(
    ("query", "param"),
    [
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("after=not-a-cursor", "after"),
        ("after=W10", "after"),  # valid base64 JSON, not a position
        ("state=lost", "state"),
    ],
)
async def test_bad_page_requests_are_400_naming_the_field(
    world: World, query: str, param: str
) -> None:
    response = await world.call("P", "GET", f"/keys?{query}")
    assert response.status_code == 400
    assert response.json()["error"]["param"] == param

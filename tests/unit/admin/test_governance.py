"""Limits as ceilings: what a platform-admin sets, nobody below lifts; nor does a key outlive
its creator or its team's maximum, the last platform-admin leave, or a list show what a direct
read refuses."""

from __future__ import annotations

from datetime import datetime

from corral.principals import SESSION_KEY_NAME
from unit.admin.world import World


async def test_a_team_admin_cannot_raise_or_remove_limits_a_platform_admin_set(
    world: World,
) -> None:
    set_by_platform = {"rpm": 100, "monthly_budget_usd": 5}
    assert (
        await world.call("pat", "POST", "/teams/alpha/limits", set_by_platform)
    ).status_code == 200
    raised = await world.call(
        "T", "POST", "/teams/alpha/limits", {"rpm": 100, "monthly_budget_usd": 1e6}
    )
    assert raised.status_code == 403
    assert raised.json()["error"]["param"] == "monthly_budget_usd"
    removed = await world.call("T", "POST", "/teams/alpha/limits", {"monthly_budget_usd": 5})
    assert removed.status_code == 403
    assert removed.json()["error"]["param"] == "rpm"
    lowered = await world.call(
        "T", "POST", "/teams/alpha/limits", {"rpm": 50, "monthly_budget_usd": 2}
    )
    assert lowered.status_code == 200
    assert lowered.json()["limits"]["rpm"] == 50
    # A platform-admin may raise them again.
    again = await world.call("pat", "POST", "/teams/alpha/limits", {"rpm": 1000})
    assert again.status_code == 200


async def test_a_key_never_outlives_the_key_that_creates_it(world: World) -> None:
    now = world.clock.now()
    await world.add_key(
        "short", world.users["D"], world.teams["alpha"], expires_at=now + 30 * 86400
    )
    forever = await world.call("short", "POST", "/keys", {"name": "forever"})
    assert forever.status_code == 201
    created = forever.json()["expires_at"]
    assert created is not None  # no expiry asked: the creator's
    later = await world.call("short", "POST", "/keys", {"name": "later", "expires_in": 60 * 86400})
    assert later.status_code == 403
    assert later.json()["error"]["param"] == "expires_at"
    sooner = await world.call("short", "POST", "/keys", {"name": "sooner", "expires_in": 86400})
    assert sooner.status_code == 201
    # A key without expiry still makes keys without expiry.
    assert (await world.call("D", "POST", "/keys", {"name": "open"})).json()["expires_at"] is None


async def test_the_last_platform_admin_can_be_neither_demoted_nor_removed(world: World) -> None:
    pat = world.users["pat"].id
    # Two platform-admins: the bootstrap user ("admin") and pat. One may step down...
    assert (
        await world.call("pat", "PATCH", f"/users/{world.keys['P'].user_id}", {"role": "developer"})
    ).status_code == 200
    # ...the last may not.
    demoted = await world.call("pat", "PATCH", f"/users/{pat}", {"role": "developer"})
    assert demoted.status_code == 409
    assert "no platform-admin" in demoted.json()["error"]["message"]
    assert (await world.call("pat", "DELETE", f"/users/{pat}")).status_code == 409
    gone = await world.call("pat", "DELETE", "/teams/alpha?force=true")
    assert gone.status_code == 409
    # With a second one, either may go.
    second = world.users["bea"].id
    assert (
        await world.call("pat", "PATCH", f"/users/{second}", {"role": "platform-admin"})
    ).status_code == 200
    assert (
        await world.call("pat", "PATCH", f"/users/{pat}", {"role": "developer"})
    ).status_code == 200


async def test_key_lists_show_only_keys_a_direct_read_would(world: World) -> None:
    pat_key = world.keys["pat"].id
    assert (await world.call("T", "GET", f"/keys/{pat_key}")).status_code == 403
    listed = await world.call("T", "GET", "/keys")
    assert listed.status_code == 200
    ids = {k["id"] for k in listed.json()["data"]}
    assert pat_key not in ids
    assert {world.keys["D"].id, world.keys["T"].id, world.keys["svc"].id} <= ids
    team_list = await world.call("T", "GET", "/keys?team=alpha")
    assert pat_key not in {k["id"] for k in team_list.json()["data"]}


DAY = 86400


async def test_a_platform_admin_sets_a_team_maximum_key_lifetime_a_team_admin_only_lowers(
    world: World,
) -> None:
    created = await world.call("pat", "POST", "/teams", {"name": "g", "max_key_lifetime": 90 * DAY})
    assert created.status_code == 201
    assert created.json()["max_key_lifetime"] == 90 * DAY
    assert (await world.call("pat", "GET", "/teams/g")).json()["max_key_lifetime"] == 90 * DAY
    set_ = await world.call("pat", "PATCH", "/teams/alpha", {"max_key_lifetime": 30 * DAY})
    assert set_.status_code == 200
    assert set_.json()["max_key_lifetime"] == 30 * DAY
    for asked in (60 * DAY, None):  # neither raised nor removed by a team-admin
        refused = await world.call("T", "PATCH", "/teams/alpha", {"max_key_lifetime": asked})
        assert refused.status_code == 403
        assert refused.json()["error"]["param"] == "max_key_lifetime"
        assert "at most 30d" in refused.json()["error"]["message"]
    lowered = await world.call("T", "PATCH", "/teams/alpha", {"max_key_lifetime": 7 * DAY})
    assert lowered.json()["max_key_lifetime"] == 7 * DAY
    described = await world.call("T", "PATCH", "/teams/alpha", {"description": "search"})
    assert described.json() | {"created_at": None} == {
        "id": world.teams["alpha"].id,
        "name": "alpha",
        "description": "search",
        "max_key_lifetime": 7 * DAY,  # a field not given stays
        "created_at": None,
    }
    assert (await world.call("D", "PATCH", "/teams/alpha", {"description": "x"})).status_code == 403
    assert (await world.call("T", "PATCH", "/teams/beta", {"description": "x"})).status_code == 403
    raised = await world.call("pat", "PATCH", "/teams/alpha", {"max_key_lifetime": None})
    assert raised.json()["max_key_lifetime"] is None


async def test_a_key_may_not_outlive_its_team_maximum_and_gets_it_when_none_is_asked(
    world: World,
) -> None:
    before = (await world.call("D", "POST", "/keys", {"name": "old"})).json()
    await world.call("pat", "PATCH", "/teams/alpha", {"max_key_lifetime": 30 * DAY})
    now = world.clock.now()
    too_long = await world.call("D", "POST", "/keys", {"name": "k", "expires_in": 31 * DAY})
    assert too_long.status_code == 400
    error = too_long.json()["error"]
    assert (error["type"], error["param"]) == ("invalid_request_error", "expires_in")
    assert "at most 30d" in error["message"]
    assert "leave it out" in error["message"]
    service = await world.call(
        "T", "POST", "/keys", {"name": "s", "service": True, "expires_in": 31 * DAY}
    )
    assert service.status_code == 400
    exact = await world.call("D", "POST", "/keys", {"name": "k", "expires_in": 30 * DAY})
    assert exact.status_code == 201
    open_ = await world.call("D", "POST", "/keys", {"name": "open"})
    assert open_.status_code == 201
    assert _timestamp(open_.json()["expires_at"]) == now + 30 * DAY
    # The existing key is not changed, but its replacement gets the team's maximum.
    assert (await world.call("D", "GET", f"/keys/{before['id']}")).json()["expires_at"] is None
    rotated = await world.call("D", "POST", f"/keys/{before['id']}/rotate", {})
    assert _timestamp(rotated.json()["new"]["expires_at"]) == now + 30 * DAY
    # A team without a maximum is unaffected.
    other = await world.call("bea", "POST", "/keys", {"name": "b"})
    assert other.json()["expires_at"] is None


async def test_a_key_without_expiry_gets_the_sooner_of_team_maximum_and_creator_key(
    world: World,
) -> None:
    now = world.clock.now()
    await world.add_key("short", world.users["D"], world.teams["alpha"], expires_at=now + 5 * DAY)
    await world.call("pat", "PATCH", "/teams/alpha", {"max_key_lifetime": 30 * DAY})
    made = await world.call("short", "POST", "/keys", {"name": "k"})
    assert _timestamp(made.json()["expires_at"]) == now + 5 * DAY
    await world.call("pat", "PATCH", "/teams/alpha", {"max_key_lifetime": DAY})
    made = await world.call("short", "POST", "/keys", {"name": "k"})
    assert _timestamp(made.json()["expires_at"]) == now + DAY


def _timestamp(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


async def test_a_portal_session_key_is_cut_to_the_team_maximum_not_refused(world: World) -> None:
    await world.call("pat", "PATCH", "/teams/alpha", {"max_key_lifetime": 3600})
    body = {"name": SESSION_KEY_NAME, "user": world.users["D"].id, "expires_in": 12 * 3600}
    session = await world.call("pat", "POST", "/keys", body)
    assert session.status_code == 201
    assert _timestamp(session.json()["expires_at"]) == world.clock.now() + 3600

"""Limits as ceilings: what a platform-admin sets, nobody below lifts; nor does a key outlive
its creator, the last platform-admin leave, or a list show what a direct read refuses."""

from __future__ import annotations

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

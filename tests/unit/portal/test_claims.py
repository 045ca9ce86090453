"""Claims → membership: e-mail, name, team and role, and every refusal says why."""

from __future__ import annotations

import pytest

from corral.portal.claims import Membership, SignInRefused, membership
from corral.portal.settings import ClaimMapping
from corral.principals import Role

RULES = ClaimMapping(
    team_prefix="corral-",
    roles={"corral-admins": "platform-admin", "ml-leads": "team-admin"},
)


def test_team_from_prefixed_group_and_developer_by_default() -> None:
    claims = {"email": "ada@example.com", "name": "Ada", "groups": ["staff", "corral-ml"]}
    assert membership(claims, RULES) == Membership("ada@example.com", "Ada", "ml", Role.DEVELOPER)


@pytest.mark.parametrize(
    ("groups", "role"),
    [
        (["corral-ml", "ml-leads"], Role.TEAM_ADMIN),
        (["corral-ml", "ml-leads", "corral-admins"], Role.PLATFORM_ADMIN),
        (["corral-admins", "corral-ml"], Role.PLATFORM_ADMIN),
        ("corral-ml", Role.DEVELOPER),
    ],
)
def test_highest_mapped_role_wins(groups: object, role: Role) -> None:
    got = membership({"email": "a@example.com", "groups": groups}, RULES)
    assert (got.team, got.role) == ("ml", role)


def test_a_role_group_is_never_taken_for_the_team() -> None:
    rules = ClaimMapping(roles={"admins": "platform-admin"}, default_team="platform")
    got = membership({"email": "a@example.com", "groups": ["admins"]}, rules)
    assert (got.team, got.role) == ("platform", Role.PLATFORM_ADMIN)


def test_name_falls_back_to_the_email() -> None:
    got = membership({"email": "a@example.com", "name": "  ", "groups": "corral-x"}, RULES)
    assert got.name == "a@example.com"


def test_separate_team_and_role_claims() -> None:
    rules = ClaimMapping(team_claim="dept", role_claim="corral_role", roles={"lead": "team-admin"})
    claims = {"email": "a@example.com", "dept": "search", "corral_role": "lead"}
    assert membership(claims, rules).role is Role.TEAM_ADMIN
    assert membership(claims, rules).team == "search"


@pytest.mark.parametrize(
    ("claims", "says"),
    [
        ({"groups": ["corral-ml"]}, "no e-mail address"),
        ({"email": "not-an-address", "groups": ["corral-ml"]}, "no e-mail address"),
        ({"email": "a@example.com", "email_verified": False, "groups": ["corral-ml"]}, "verified"),
        ({"email": "a@example.com", "groups": ["staff"]}, "starting with 'corral-'"),
        ({"email": "a@example.com"}, "did not name your team"),
    ],
)
def test_refusals_say_what_is_missing(claims: dict[str, object], says: str) -> None:
    with pytest.raises(SignInRefused, match=says) as info:
        membership(claims, RULES)
    assert info.value.status == 403


def test_allowed_domains() -> None:
    rules = ClaimMapping(allowed_domains=["Example.com"], default_team="t")
    assert membership({"email": "a@EXAMPLE.com"}, rules).team == "t"
    with pytest.raises(SignInRefused, match=r"accounts at evil\.test may not sign in"):
        membership({"email": "a@evil.test"}, rules)


def test_unknown_role_in_the_mapping_is_a_config_error() -> None:
    with pytest.raises(ValueError, match="roles are platform-admin"):
        ClaimMapping(roles={"x": "superuser"})

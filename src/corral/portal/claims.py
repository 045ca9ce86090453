"""From ID-token claims to a Corral membership: e-mail, name, team and role (a pure function)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from corral.errors import PermissionDenied
from corral.portal.settings import ClaimMapping
from corral.principals import Role

_RANK = {Role.DEVELOPER: 0, Role.TEAM_ADMIN: 1, Role.PLATFORM_ADMIN: 2}


@dataclass(frozen=True, slots=True)
class Membership:
    """Who signed in and where they belong, as the identity provider says."""

    email: str
    name: str
    team: str
    role: Role


class SignInRefused(PermissionDenied):
    """The identity provider vouched for someone this portal may not let in; says why."""


def membership(claims: Mapping[str, object], rules: ClaimMapping) -> Membership:
    """The membership ``claims`` grant under ``rules``; SignInRefused saying what is missing."""
    email = claims.get(rules.email_claim)
    if not isinstance(email, str) or "@" not in email:
        raise SignInRefused(
            f"the identity provider sent no e-mail address in the {rules.email_claim!r} claim; "
            "ask your administrator to release it to this application"
        )
    if claims.get("email_verified") is False:
        raise SignInRefused("your e-mail address is not verified at the identity provider")
    domain = email.rpartition("@")[2].lower()
    if rules.allowed_domains and domain not in {d.lower() for d in rules.allowed_domains}:
        raise SignInRefused(f"accounts at {domain} may not sign in to this Corral")
    name = claims.get(rules.name_claim)
    return Membership(
        email=email,
        name=name.strip()[:200] if isinstance(name, str) and name.strip() else email,
        team=_team(claims, rules),
        role=_role(claims, rules),
    )


def _values(claims: Mapping[str, object], claim: str) -> list[str]:
    value = claims.get(claim)
    if isinstance(value, str):
        return [value]
    if isinstance(value, list | tuple):
        return [item for item in value if isinstance(item, str)]
    return []


def _team(claims: Mapping[str, object], rules: ClaimMapping) -> str:
    prefix = rules.team_prefix
    for value in _values(claims, rules.team_claim):
        if value.startswith(prefix) and len(value) > len(prefix) and value not in rules.roles:
            return value[len(prefix) :]
    if rules.default_team is not None:
        return rules.default_team
    where = f" starting with {prefix!r}" if prefix else ""
    raise SignInRefused(
        f"the identity provider did not name your team (a {rules.team_claim!r} claim{where}); "
        "ask your administrator to add you to a Corral team"
    )


def _role(claims: Mapping[str, object], rules: ClaimMapping) -> Role:
    granted = [Role(rules.roles[v]) for v in _values(claims, rules.role_claim) if v in rules.roles]
    return max(granted, key=_RANK.__getitem__, default=Role.DEVELOPER)

"""PortalSettings: how the developer portal signs people in and how it is reached."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

ROLES = ("platform-admin", "team-admin", "developer")


class _Group(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ClaimMapping(_Group):
    """How ID-token claims become a Corral team and role (claims win over the store)."""

    email_claim: str = Field("email", description="Claim holding the e-mail (the user's key).")
    name_claim: str = Field("name", description="Claim holding the display name.")
    team_claim: str = Field(
        "groups", description="Claim (a string or a list) naming the user's team."
    )
    team_prefix: str = Field(
        "", description="Only values with this prefix name a team; the prefix is cut off."
    )
    default_team: str | None = Field(
        None, description="Team for users whose claims name none; unset: refuse them."
    )
    role_claim: str = Field("groups", description="Claim (a string or a list) giving the role.")
    roles: dict[str, str] = Field(
        default_factory=dict,
        description="Claim value → role (platform-admin, team-admin or developer); the highest "
        "matching role wins, no match means developer.",
        examples=[{"corral-admins": "platform-admin", "ml-leads": "team-admin"}],
    )
    allowed_domains: list[str] = Field(
        default_factory=list, description="E-mail domains allowed to sign in; empty: any."
    )
    create_teams: bool = Field(
        False, description="Create a team named by the claims when it does not exist yet."
    )

    @field_validator("roles")
    @classmethod
    def _known_roles(cls, value: dict[str, str]) -> dict[str, str]:
        for claim, role in value.items():
            if role not in ROLES:
                raise ValueError(f"{claim!r} maps to {role!r}; roles are {', '.join(ROLES)}")
        return value


class OidcSettings(_Group):
    """An OpenID Connect provider (authorization code flow with PKCE)."""

    issuer: str = Field(
        description="Issuer URL; its /.well-known/openid-configuration is read at sign-in.",
        examples=["https://login.example.com/realms/corp"],
    )
    client_id: str = Field(description="This portal's client id at the provider.")
    client_secret: SecretStr | None = Field(
        None, description="Client secret (confidential clients); unset for public clients."
    )
    scopes: list[str] = Field(
        default_factory=lambda: ["openid", "email", "profile"], description="Scopes to ask for."
    )
    display_name: str = Field("single sign-on", description="Shown on the sign-in button.")
    claims: ClaimMapping = Field(default_factory=ClaimMapping)

    @field_validator("issuer")
    @classmethod
    def _http_issuer(cls, value: str) -> str:
        if not value.startswith(("https://", "http://")):
            raise ValueError("must be an https:// URL (http:// only for local testing)")
        return value.rstrip("/")


class PortalSettings(_Group):
    """The developer portal at /ui."""

    enabled: bool = Field(True, description="Serve the portal at /ui.")
    public_url: str | None = Field(
        None,
        description="Base URL developers reach Corral at (for snippets and the SSO redirect); "
        "unset: taken from each request.",
        examples=["https://ai.example.com"],
    )
    oidc: OidcSettings | None = Field(None, description="Single sign-on; unset: keys only.")
    key_sign_in: bool = Field(True, description="Allow signing in by pasting an API key.")
    session_hours: float = Field(
        12.0, gt=0, le=24 * 30, description="How long a sign-in lasts (its key expires then)."
    )
    secure_cookies: bool | None = Field(
        None, description="Mark cookies Secure; unset: when the request came over https."
    )

    @field_validator("public_url")
    @classmethod
    def _bare_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("https://", "http://")):
            raise ValueError("must be an http:// or https:// URL")
        return None if value is None else value.rstrip("/")

"""PortalSettings: how the developer portal signs people in (defined with Corral's settings)."""

from __future__ import annotations

from corral.settings import ROLES, ClaimMapping, OidcSettings, PortalSettings

__all__ = ["ROLES", "ClaimMapping", "OidcSettings", "PortalSettings"]

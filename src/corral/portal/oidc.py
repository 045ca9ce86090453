"""OpenID Connect sign-in: authorization code flow with PKCE and a verified ID token."""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from corral.errors import PermissionDenied, UpstreamUnavailable
from corral.portal.settings import OidcSettings

ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "ES256", "ES384", "EdDSA")
_METADATA_TTL = 3600.0
_LEEWAY = 60


@dataclass(frozen=True, slots=True)
class PendingLogin:
    """What the browser carries (sealed) between leaving for the provider and coming back."""

    state: str
    nonce: str
    verifier: str
    next_path: str


@dataclass(frozen=True, slots=True)
class _Provider:
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    auth_methods: tuple[str, ...]
    fetched_at: float


def pkce_challenge(verifier: str) -> str:
    """The S256 code challenge of a PKCE verifier (RFC 7636)."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


class OidcClient:
    """One relying party at one provider; reads the provider's metadata and keys lazily."""

    def __init__(self, settings: OidcSettings, http: httpx.AsyncClient) -> None:
        self.settings = settings
        self._http = http
        self._provider: _Provider | None = None
        self._keys: KeySet | None = None

    async def begin(self, redirect_uri: str, next_path: str) -> tuple[str, PendingLogin]:
        """The provider URL to send the browser to, and what to remember until it returns."""
        provider = await self._metadata()
        pending = PendingLogin(
            state=secrets.token_urlsafe(24),
            nonce=secrets.token_urlsafe(24),
            verifier=secrets.token_urlsafe(48),
            next_path=next_path,
        )
        query = {
            "response_type": "code",
            "client_id": self.settings.client_id,
            "redirect_uri": redirect_uri,
            "scope": " ".join(self.settings.scopes),
            "state": pending.state,
            "nonce": pending.nonce,
            "code_challenge": pkce_challenge(pending.verifier),
            "code_challenge_method": "S256",
        }
        separator = "&" if "?" in provider.authorization_endpoint else "?"
        return provider.authorization_endpoint + separator + urlencode(query), pending

    async def finish(self, pending: PendingLogin, code: str, redirect_uri: str) -> dict[str, Any]:
        """Trade the code for tokens and return the ID token's verified claims."""
        provider = await self._metadata()
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "code_verifier": pending.verifier,
            "client_id": self.settings.client_id,
        }
        auth: tuple[str, str] | None = None
        secret = self.settings.client_secret
        if secret is not None:
            if "client_secret_basic" in provider.auth_methods:
                auth = (self.settings.client_id, secret.get_secret_value())
            else:
                form["client_secret"] = secret.get_secret_value()
        response = await self._send("POST", provider.token_endpoint, data=form, auth=auth)
        id_token = _json(response).get("id_token")
        if response.status_code != 200 or not isinstance(id_token, str):
            raise PermissionDenied("the identity provider did not accept the sign-in; try again")
        return await self._verify(id_token, pending.nonce)

    async def _verify(self, id_token: str, nonce: str) -> dict[str, Any]:
        for refresh in (False, True):
            keys = await self._key_set(refresh)
            try:
                token = jwt.decode(id_token, keys, algorithms=ALGORITHMS)
            except JoseError:
                continue  # perhaps a rotated signing key: fetch the key set once more
            registry = jwt.JWTClaimsRegistry(
                leeway=_LEEWAY,
                iss={"essential": True, "value": self.settings.issuer},
                aud={"essential": True, "value": self.settings.client_id},
                nonce={"essential": True, "value": nonce},
                sub={"essential": True},
                exp={"essential": True},
            )
            try:
                registry.validate(token.claims)
            except JoseError as exc:
                raise PermissionDenied(f"the ID token was not valid ({exc.error})") from exc
            return dict(token.claims)
        raise PermissionDenied("the ID token's signature did not verify against the provider")

    async def _metadata(self) -> _Provider:
        provider = self._provider
        if provider is not None and time.monotonic() - provider.fetched_at < _METADATA_TTL:
            return provider
        url = self.settings.issuer + "/.well-known/openid-configuration"
        doc = _json(await self._send("GET", url))
        if doc.get("issuer", "").rstrip("/") != self.settings.issuer:
            raise UpstreamUnavailable("the identity provider's metadata names another issuer")
        try:
            provider = _Provider(
                authorization_endpoint=str(doc["authorization_endpoint"]),
                token_endpoint=str(doc["token_endpoint"]),
                jwks_uri=str(doc["jwks_uri"]),
                auth_methods=tuple(
                    doc.get("token_endpoint_auth_methods_supported", ["client_secret_basic"])
                ),
                fetched_at=time.monotonic(),
            )
        except KeyError as exc:
            raise UpstreamUnavailable(f"the identity provider's metadata lacks {exc}") from exc
        self._provider, self._keys = provider, None
        return provider

    async def _key_set(self, refresh: bool) -> KeySet:
        if self._keys is None or refresh:
            provider = await self._metadata()
            try:
                document: Any = _json(await self._send("GET", provider.jwks_uri))
                self._keys = KeySet.import_key_set(document)
            except (JoseError, ValueError, TypeError) as exc:
                raise UpstreamUnavailable(
                    "the identity provider's signing keys are invalid"
                ) from exc
        return self._keys

    async def _send(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        try:
            return await self._http.request(method, url, timeout=10.0, **kwargs)
        except httpx.HTTPError as exc:
            raise UpstreamUnavailable(
                f"the identity provider at {self.settings.issuer} could not be reached; try again"
            ) from exc


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}

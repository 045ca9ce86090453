"""The portal's only path to data: the admin API and /v1, called with the signed-in user's key."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

from corral.errors import RequestError, UpstreamTimeout, UpstreamUnavailable

_TIMEOUT = httpx.Timeout(15.0, connect=5.0)
_STREAM_TIMEOUT = httpx.Timeout(300.0, connect=5.0)


class Refused(RequestError):
    """The admin API or /v1 refused a call; carries its status and message to the page."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class Upstream:
    """HTTP calls to the admin API (``admin_base``) and the OpenAI API (``api_base``)."""

    def __init__(self, http: httpx.AsyncClient, admin_base: str, api_base: str) -> None:
        self._http = http
        self.admin_base = admin_base.rstrip("/")
        self.api_base = api_base.rstrip("/")

    async def admin(
        self,
        method: str,
        path: str,
        key: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """The JSON answer of an admin call; Refused (with the API's own message) otherwise."""
        response = await self._send(method, self.admin_base + path, key, params, body)
        if response.status_code >= 400:
            raise _refusal(response)
        data = response.json() if response.content else {}
        return data if isinstance(data, dict) else {"data": data}

    async def admin_if_present(
        self, path: str, key: str, params: Mapping[str, str] | None = None
    ) -> dict[str, Any] | None:
        """Like a GET ``admin`` call, but None when this installation has no such endpoint."""
        try:
            return await self.admin("GET", path, key, params=params)
        except Refused as exc:
            if exc.status in (404, 405, 501):
                return None
            raise

    async def admin_text(self, path: str, key: str, params: Mapping[str, str]) -> str:
        """A non-JSON admin answer (CSV export) as text."""
        response = await self._send("GET", self.admin_base + path, key, params, None)
        if response.status_code >= 400:
            raise _refusal(response)
        return response.text

    async def model_names(self, key: str) -> list[str]:
        """The models this key may call, from GET /v1/models."""
        response = await self._send("GET", self.api_base + "/models", key, None, None)
        if response.status_code >= 400:
            raise _refusal(response)
        data = response.json().get("data", [])
        return [str(m["id"]) for m in data if isinstance(m, dict) and "id" in m]

    async def open_chat(self, key: str, body: bytes) -> httpx.Response:
        """POST /v1/chat/completions and return the response unread; the caller closes it."""
        request = self._http.build_request(
            "POST",
            self.api_base + "/chat/completions",
            content=body,
            headers={"authorization": f"Bearer {key}", "content-type": "application/json"},
            timeout=_STREAM_TIMEOUT,
        )
        try:
            return await self._http.send(request, stream=True)
        except httpx.HTTPError as exc:
            raise UpstreamUnavailable("the API could not be reached; try again") from exc

    async def _send(
        self,
        method: str,
        url: str,
        key: str,
        params: Mapping[str, str] | None,
        body: Mapping[str, Any] | None,
    ) -> httpx.Response:
        try:
            return await self._http.request(
                method,
                url,
                params=params,
                json=body,
                headers={"authorization": f"Bearer {key}"},
                timeout=_TIMEOUT,
            )
        except httpx.TimeoutException as exc:
            raise UpstreamTimeout("the admin API did not answer in time; try again") from exc
        except httpx.HTTPError as exc:
            raise UpstreamUnavailable("the admin API could not be reached; try again") from exc


def error_message(payload: object, fallback: str) -> str:
    """The message inside an OpenAI-style error envelope, or ``fallback``."""
    if isinstance(payload, dict):
        error = payload.get("error")
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return str(error["message"])
    return fallback


def _refusal(response: httpx.Response) -> Refused:
    try:
        payload: object = response.json()
    except ValueError:
        payload = None
    fallback = f"the server answered {response.status_code}"
    return Refused(response.status_code, error_message(payload, fallback))

"""AdminClient: the admin API over HTTP for the CLI and scripts; refusals become Corral errors."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

import httpx

from corral.admin import PREFIX
from corral.errors import (
    AuthenticationFailed,
    ConfigError,
    Conflict,
    InvalidRequest,
    NotFound,
    Overloaded,
    PayloadTooLarge,
    PermissionDenied,
    RateLimited,
    RequestError,
    TemporaryError,
)

_BY_STATUS: dict[int, type[RequestError]] = {
    400: InvalidRequest,
    401: AuthenticationFailed,
    403: PermissionDenied,
    404: NotFound,
    409: Conflict,
    413: PayloadTooLarge,
    429: RateLimited,
    503: Overloaded,
}

Params = Mapping[str, str | int | bool | None]


class AdminClient:
    """Calls ``<url>/admin/v1`` with a bearer key; every failure is a ``CorralError`` whose
    message says what went wrong (unreachable server, refused key, invalid field, ...)."""

    def __init__(
        self,
        url: str,
        api_key: str,
        *,
        timeout: float = 10.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        # A pasted API base (…/v1) means the same Corral as its root: not …/v1/admin/v1.
        root = self.url.removesuffix(PREFIX).removesuffix("/v1")
        base = root + PREFIX
        try:
            self._http = httpx.Client(
                base_url=base,
                headers={"Authorization": f"Bearer {api_key}"},
                timeout=timeout,
                transport=transport,
            )
        except (httpx.InvalidURL, ValueError) as exc:
            raise ConfigError(f"{url!r} is not a URL; give e.g. http://127.0.0.1:8000") from exc

    def get(self, path: str, params: Params | None = None) -> Any:
        return self._call("GET", path, params=params)

    def post(self, path: str, body: Mapping[str, Any] | None = None) -> Any:
        return self._call("POST", path, json=dict(body or {}))

    def patch(self, path: str, body: Mapping[str, Any]) -> Any:
        return self._call("PATCH", path, json=dict(body))

    def delete(self, path: str, params: Params | None = None) -> Any:
        return self._call("DELETE", path, params=params)

    def lines(self, path: str, params: Params | None = None) -> Iterator[str]:
        """The lines of a streamed JSON-lines answer (the audit export)."""
        request = self._http.stream("GET", path, params=_clean(params))
        with _translated(self.url), request as response:
            if response.is_error:
                response.read()
                raise _refusal(response)
            yield from response.iter_lines()

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> AdminClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _call(
        self, method: str, path: str, *, params: Params | None = None, json: Any = None
    ) -> Any:
        with _translated(self.url):
            response = self._http.request(method, path, params=_clean(params), json=json)
        if response.is_error:
            raise _refusal(response)
        return response.json()


@contextlib.contextmanager
def _translated(url: str) -> Iterator[None]:
    """Turn transport failures into messages that say what to check."""
    try:
        yield
    except httpx.ConnectError as exc:
        raise TemporaryError(
            f"cannot reach Corral at {url} (connection refused or no such host); "
            "start it with `corral up`, or point --url / CORRAL_URL at a running Corral"
        ) from exc
    except httpx.TimeoutException as exc:
        raise TemporaryError(f"Corral at {url} did not answer in time; retry") from exc
    except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
        raise ConfigError(
            f"{url!r} is not an http(s) URL; give e.g. http://127.0.0.1:8000"
        ) from exc
    except httpx.HTTPError as exc:
        raise TemporaryError(f"talking to Corral at {url} failed ({type(exc).__name__})") from exc


def _refusal(response: httpx.Response) -> RequestError:
    """The Corral error an error response stands for, with the server's message and field."""
    try:
        error = response.json()["error"]
        message, param = str(error["message"]), error.get("param")
    except (ValueError, KeyError, TypeError):
        snippet = response.text[:200].strip() or response.reason_phrase
        message, param = f"HTTP {response.status_code} from the admin API: {snippet}", None
    kind = _BY_STATUS.get(response.status_code, RequestError)
    return kind(message, param=param if isinstance(param, str) else None)


def _clean(params: Params | None) -> dict[str, str] | None:
    if params is None:
        return None
    clean = {}
    for name, value in params.items():
        if value is None or value is False:
            continue
        clean[name] = "true" if value is True else str(value)
    return clean

"""AdminClient turns each kind of failure into a Corral error whose message says what to do."""

from __future__ import annotations

import json

import httpx
import pytest

from corral.admin.client import AdminClient
from corral.errors import (
    AuthenticationFailed,
    ConfigError,
    Conflict,
    CorralError,
    Overloaded,
    PermissionDenied,
    RequestError,
    TemporaryError,
)


def envelope(status: int, message: str, param: str | None = None) -> httpx.Response:
    body = {"error": {"message": message, "type": "x", "param": param, "code": None}}
    return httpx.Response(status, json=body)


def client_answering(
    answer: httpx.Response, seen: list[httpx.Request] | None = None
) -> AdminClient:
    def handle(request: httpx.Request) -> httpx.Response:
        if seen is not None:
            seen.append(request)
        return answer

    return AdminClient("http://corral:8000", "ck-key", transport=httpx.MockTransport(handle))


def test_requests_go_under_admin_v1_with_the_bearer_key_and_clean_params() -> None:
    seen: list[httpx.Request] = []
    api = client_answering(httpx.Response(200, json={"ok": True}), seen)
    assert api.get(
        "/keys", {"team": "a", "user": None, "include_inactive": True, "all": False}
    ) == {"ok": True}
    api.post("/teams", {"name": "t"})
    request = seen[0]
    assert request.url.path == "/admin/v1/keys"
    assert dict(request.url.params) == {"team": "a", "include_inactive": "true"}
    assert request.headers["Authorization"] == "Bearer ck-key"
    assert json.loads(seen[1].content) == {"name": "t"}
    prefixed = AdminClient(
        "http://corral:8000/admin/v1/",
        "k",
        transport=httpx.MockTransport(lambda r: httpx.Response(200, json={"p": r.url.path})),
    )
    assert prefixed.get("/me") == {"p": "/admin/v1/me"}


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (400, RequestError),
        (401, AuthenticationFailed),
        (403, PermissionDenied),
        (409, Conflict),
        (503, Overloaded),
    ],
)
def test_refusals_become_the_matching_error_with_message_and_field(
    status: int, kind: type[CorralError]
) -> None:
    api = client_answering(envelope(status, "name: too long", "name"))
    with pytest.raises(CorralError) as raised:
        api.post("/teams", {"name": "x"})
    assert isinstance(raised.value, kind)
    assert getattr(raised.value, "param", None) == "name"
    assert raised.value.message == "name: too long"


def test_a_non_json_error_page_is_described() -> None:
    api = client_answering(httpx.Response(502, text="<html>Bad gateway</html>"))
    with pytest.raises(RequestError, match="HTTP 502 from the admin API: <html>Bad gateway"):
        api.get("/teams")


def test_an_unreachable_server_says_how_to_fix_it() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    api = AdminClient("http://127.0.0.1:9", "k", transport=httpx.MockTransport(refuse))
    with pytest.raises(
        TemporaryError, match=r"cannot reach Corral at http://127\.0\.0\.1:9.*corral up"
    ):
        api.get("/me")


def test_a_timeout_and_a_bad_url_are_explained() -> None:
    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    with pytest.raises(TemporaryError, match="did not answer in time"):
        AdminClient("http://x", "k", transport=httpx.MockTransport(slow)).get("/me")
    with pytest.raises(ConfigError, match="not an http"):
        AdminClient("ftp://x", "k").get("/me")


def test_json_lines_are_streamed_and_errors_still_mapped() -> None:
    lines = client_answering(httpx.Response(200, text='{"id": 1}\n{"id": 2}\n'))
    assert list(lines.lines("/audit/export")) == ['{"id": 1}', '{"id": 2}']
    refused = client_answering(envelope(403, "developer may not audit.read"))
    with pytest.raises(PermissionDenied):
        list(refused.lines("/audit/export"))

"""CSRF tokens, the Origin check, and sealed session cookies."""

from __future__ import annotations

import base64

import pytest

from corral.portal import csrf
from corral.portal.sessions import Sealer, Session, open_session, seal_session
from corral.principals import Role

SECRET = b"0123456789abcdef0123456789abcdef"


def test_csrf_token_is_bound_to_the_session_and_the_secret() -> None:
    token = csrf.token_for(SECRET, "sid-1")
    assert csrf.token_matches(SECRET, "sid-1", token)
    assert not csrf.token_matches(SECRET, "sid-2", token)
    assert not csrf.token_matches(b"another secret", "sid-1", token)
    assert token != csrf.token_for(SECRET, "sid-2")


@pytest.mark.parametrize("offered", [None, "", "x" * 200, "0" * 64])
def test_csrf_refuses_missing_oversized_and_wrong_tokens(offered: str | None) -> None:
    assert not csrf.token_matches(SECRET, "sid-1", offered)


@pytest.mark.parametrize(
    ("origin", "host", "same"),
    [
        (None, "corral.example", True),  # no Origin: left to the token
        ("https://corral.example", "corral.example", True),
        ("http://127.0.0.1:8000", "127.0.0.1:8000", True),
        ("https://evil.example", "corral.example", False),
        ("null", "corral.example", False),
        ("https://corral.example", None, False),
    ],
)
def test_same_origin(origin: str | None, host: str | None, same: bool) -> None:
    assert csrf.same_origin(origin, host) is same


def signed_in(expires_at: float = 2_000.0) -> Session:
    return Session(
        key="ck-secret-key-value",
        key_id="key_1",
        minted=True,
        role=Role.TEAM_ADMIN,
        name="Ada",
        user_id="user_1",
        team_id="team_1",
        team_name="ml",
        expires_at=expires_at,
    )


def test_session_round_trip_and_the_key_is_not_readable_in_the_cookie() -> None:
    sealer = Sealer(SECRET, "session")
    session = signed_in()
    cookie = seal_session(sealer, session)
    assert open_session(sealer, cookie, now=1_000.0, max_age=3600) == session
    raw = base64.urlsafe_b64decode(cookie + "=" * (-len(cookie) % 4))
    assert b"ck-secret-key-value" not in raw
    assert "ck-secret" not in repr(session)


def test_tampered_foreign_expired_and_garbage_cookies_give_an_anonymous_session() -> None:
    sealer = Sealer(SECRET, "session")
    cookie = seal_session(sealer, signed_in())
    tampered = cookie[:-6] + ("AAAAAA" if not cookie.endswith("AAAAAA") else "BBBBBB")
    for token in (tampered, "garbage", "", None, "x" * 5000):
        assert not open_session(sealer, token, now=1_000.0, max_age=3600).signed_in
    other = Sealer(SECRET, "another purpose")
    assert not open_session(other, cookie, now=1_000.0, max_age=3600).signed_in
    assert not open_session(sealer, cookie, now=2_000.0, max_age=3600).signed_in


def test_a_sealed_mapping_of_the_wrong_shape_is_refused() -> None:
    sealer = Sealer(SECRET, "session")
    assert not open_session(sealer, sealer.seal({"sid": 3}), 0.0, 3600).signed_in
    bad_role = sealer.seal({"sid": "s", "key": "ck-x", "role": "god", "expires_at": 9e9})
    assert not open_session(sealer, bad_role, 0.0, 3600).signed_in


def test_renewed_sessions_get_a_fresh_id() -> None:
    session = signed_in()
    assert session.renewed().sid != session.sid
    assert session.renewed().key == session.key

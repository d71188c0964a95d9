"""The session model, read from real-shaped whoami JSON, and Credentials."""

from __future__ import annotations

import copy
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from ory_kratos_client.models.session import Session as SdkSession

from kratos_aal import (
    AAL,
    ConfigurationError,
    Credentials,
    KratosAALError,
    KratosUnavailable,
    MalformedResponse,
    Session,
)
from kratos_aal._credentials import MAX_CREDENTIAL_LENGTH
from kratos_aal._models import parse_datetime

from .openapi import assert_valid, errors

# The shape of BEHAVIOR.md §2, with Kratos's nanosecond timestamps.
WHOAMI: dict[str, Any] = {
    "id": "8f1b2a4e-0c4d-4b8f-9d51-6f3e1a2b7c90",
    "active": True,
    "expires_at": "2025-05-28T07:04:13.918276388Z",
    "authenticated_at": "2025-05-27T07:04:13.918276388Z",
    "authenticator_assurance_level": "aal2",
    "authentication_methods": [
        {"method": "password", "aal": "aal1", "completed_at": "2025-05-27T07:03:58.10284Z"},
        {"method": "totp", "aal": "aal2", "completed_at": "2025-05-27T07:04:13.918276388Z"},
    ],
    "issued_at": "2025-05-27T07:03:58.102840111Z",
    "identity": {
        "id": "3f8e1c52-2b0e-4e39-a7a4-5b1c9d0e6f21",
        "schema_id": "default",
        "schema_url": "http://127.0.0.1:4433/schemas/ZGVmYXVsdA",
        "state": "active",
        "traits": {"email": "ada@example.com", "name": {"first": "Ada"}},
        "verifiable_addresses": [],
        "recovery_addresses": [],
        "metadata_public": {"plan": "pro"},
        "created_at": "2025-01-02T03:04:05Z",
        "updated_at": "2025-01-02T03:04:05Z",
        "organization_id": None,
    },
    "devices": [
        {
            "id": "2b0a6d3f-5c1e-4f7a-9b8d-0e1f2a3b4c5d",
            "ip_address": "10.0.0.1",
            "user_agent": "curl/8",
            "location": "Berlin, DE",
        }
    ],
    "tokenized": "eyJhbGciOiJFUzI1NiJ9.e30.sig",
    "some_future_field": {"kept": True},
}

OIDC_WEBAUTHN: dict[str, Any] = {
    **WHOAMI,
    "authentication_methods": [
        {
            "method": "oidc",
            "aal": "aal1",
            "completed_at": "2025-05-27T07:00:00Z",
            "provider": "github",
            "organization": "",
            "upstream_acr": "",
            "upstream_amr": ["pwd"],
        },
        {"method": "webauthn", "aal": "aal2", "completed_at": "2025-05-27T07:01:00.5+02:00"},
    ],
}


def test_parses_the_whoami_body() -> None:
    session = Session.from_json(WHOAMI)
    assert session.id == WHOAMI["id"]
    assert session.active is True
    assert session.aal is AAL.AAL2
    assert session.identity is not None
    assert session.identity.id == "3f8e1c52-2b0e-4e39-a7a4-5b1c9d0e6f21"
    assert session.identity.schema_id == "default"
    assert session.identity.state == "active"
    assert session.identity.traits["name"] == {"first": "Ada"}
    assert session.identity.metadata_public == {"plan": "pro"}
    assert session.method_names == ("password", "totp")
    totp = session.authentication_methods[1]
    assert (totp.method, totp.aal) == ("totp", AAL.AAL2)
    assert totp.completed_at == datetime(2025, 5, 27, 7, 4, 13, 918276, tzinfo=timezone.utc)
    assert session.expires_at is not None and session.expires_at.tzinfo is not None
    assert session.raw["some_future_field"] == {"kept": True}
    assert session.raw["tokenized"].startswith("eyJ")


def test_session_is_immutable_and_raw_read_only() -> None:
    session = Session.from_json(WHOAMI)
    with pytest.raises(AttributeError):
        session.aal = AAL.AAL0  # type: ignore[misc]
    with pytest.raises(TypeError):
        session.raw["id"] = "other"  # type: ignore[index]
    assert session.identity is not None
    with pytest.raises(TypeError):
        session.identity.traits["email"] = "x"  # type: ignore[index]


def test_repr_leaves_out_personal_data() -> None:
    text = repr(Session.from_json(WHOAMI))
    assert "ada@example.com" not in text
    assert "aal2" in text and WHOAMI["id"] in text


def test_identity_null() -> None:
    body = {**WHOAMI, "identity": None}
    session = Session.from_json(body)
    assert session.identity is None
    assert session.is_active(datetime(2025, 5, 27, 8, tzinfo=timezone.utc))
    # The OpenAPI schema does not allow null here, but Kratos's login API sends it (§3).
    assert {e.split(":")[0] for e in errors("session", body)} == {"['identity']"}


def test_oidc_and_webauthn_methods() -> None:
    session = Session.from_json(OIDC_WEBAUTHN)
    oidc, webauthn = session.authentication_methods
    assert oidc.provider == "github"
    assert webauthn.completed_at == datetime(2025, 5, 27, 5, 1, 0, 500000, tzinfo=timezone.utc)


@pytest.mark.parametrize("body", [WHOAMI, OIDC_WEBAUTHN], ids=["password-totp", "oidc-webauthn"])
def test_samples_match_kratos_openapi(body: dict[str, Any]) -> None:
    assert_valid("session", body)


@pytest.mark.parametrize(
    "body",
    [WHOAMI, OIDC_WEBAUTHN, {**WHOAMI, "identity": None}],
    ids=["password-totp", "oidc-webauthn", "identity-null"],
)
def test_official_sdk_reads_what_we_read(body: dict[str, Any]) -> None:
    ours = Session.from_json(body)
    sdk = SdkSession.from_dict(copy.deepcopy(body))
    assert sdk is not None and sdk.authenticator_assurance_level is not None
    assert sdk.id == ours.id
    assert str(sdk.authenticator_assurance_level.value) == ours.aal.value
    assert [m.method for m in sdk.authentication_methods or []] == list(ours.method_names)
    assert (sdk.identity.id if sdk.identity else None) == (
        ours.identity.id if ours.identity else None
    )
    assert sdk.expires_at == ours.expires_at


def test_missing_optional_fields() -> None:
    session = Session.from_json({"id": "only-an-id"})
    assert session.aal is AAL.AAL0  # no level vouched for: the safe reading
    assert session.active is False
    assert session.identity is None
    assert session.authentication_methods == ()
    assert session.expires_at is None and session.authenticated_at is None
    method = Session.from_json({"id": "x", "authentication_methods": [{}]}).authentication_methods[
        0
    ]
    assert (method.method, method.aal, method.completed_at) == ("", AAL.AAL0, None)


@pytest.mark.parametrize(
    "body",
    [
        pytest.param([], id="list"),
        pytest.param("session", id="string"),
        pytest.param(None, id="null"),
        pytest.param({}, id="no-id"),
        pytest.param({"id": 5}, id="id-not-string"),
        pytest.param({"id": "x", "active": "true"}, id="active-not-bool"),
        pytest.param({"id": "x", "authenticator_assurance_level": "aal9"}, id="unknown-aal"),
        pytest.param({"id": "x", "authentication_methods": {}}, id="methods-not-list"),
        pytest.param({"id": "x", "authentication_methods": ["password"]}, id="method-not-object"),
        pytest.param({"id": "x", "expires_at": "tomorrow"}, id="bad-date"),
        pytest.param({"id": "x", "expires_at": 17}, id="date-not-string"),
        pytest.param({"id": "x", "identity": "someone"}, id="identity-not-object"),
        pytest.param({"id": "x", "identity": {"traits": {}}}, id="identity-no-id"),
        pytest.param({"id": "x", "identity": {"id": "i", "traits": []}}, id="traits-not-object"),
        pytest.param({"id": "x", "identity": {"id": "i", "state": 1}}, id="state-not-string"),
    ],
)
def test_not_a_session_is_an_error_not_a_crash(body: Any) -> None:
    with pytest.raises(MalformedResponse) as raised:
        Session.from_json(body)
    assert isinstance(raised.value, KratosUnavailable)
    assert isinstance(raised.value, KratosAALError)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "2025-05-27T07:04:13.918276388Z",
            datetime(2025, 5, 27, 7, 4, 13, 918276, tzinfo=timezone.utc),
        ),
        ("2025-05-27T07:04:13Z", datetime(2025, 5, 27, 7, 4, 13, tzinfo=timezone.utc)),
        ("2025-05-27t07:04:13.1z", datetime(2025, 5, 27, 7, 4, 13, 100000, tzinfo=timezone.utc)),
        ("2025-05-27T09:04:13+02:00", datetime(2025, 5, 27, 7, 4, 13, tzinfo=timezone.utc)),
        (
            "2025-05-27T02:04:13.5-05:00",
            datetime(2025, 5, 27, 7, 4, 13, 500000, tzinfo=timezone.utc),
        ),
        ("2016-12-31T23:59:60Z", datetime(2016, 12, 31, 23, 59, 59, tzinfo=timezone.utc)),
    ],
)
def test_parse_datetime(text: str, expected: datetime) -> None:
    parsed = parse_datetime(text)
    assert parsed == expected
    assert parsed.utcoffset() is not None


@pytest.mark.parametrize(
    "text",
    [
        "2025-05-27T07:04:13",
        "2025-05-27",
        "2025-13-01T00:00:00Z",
        "2025-05-27T07:04:13.1234567890Z",
        "2025-05-27T07:04:13+24:00",
        " 2025-05-27T07:04:13Z",
        "",
        "x" * 100,
    ],
)
def test_parse_datetime_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_datetime(text)


def test_aal_order_and_strings() -> None:
    assert AAL.AAL2 > AAL.AAL1 > AAL.AAL0
    assert AAL.AAL3 >= AAL.AAL2 and AAL.AAL1 <= AAL.AAL1 and AAL.AAL0 < AAL.AAL3
    assert AAL.AAL2 > "aal1" and AAL.AAL1 < "AAL2" and AAL.AAL1 <= "aal1" and AAL.AAL1 >= "aal1"
    assert str.__eq__(AAL.AAL2, "aal2") and hash(AAL.AAL2) == hash("aal2")
    assert str(AAL.AAL2) == "aal2"
    assert AAL.parse("AAL2") is AAL.AAL2 and AAL.parse(AAL.AAL1) is AAL.AAL1
    assert sorted([AAL.AAL2, AAL.AAL0, AAL.AAL1]) == [AAL.AAL0, AAL.AAL1, AAL.AAL2]
    for bad in ("aal4", "", None, 2):
        with pytest.raises(ConfigurationError, match="aal"):
            AAL.parse(bad)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        assert AAL.AAL1 < 2
    with pytest.raises(TypeError):
        assert AAL.AAL1 > 2
    with pytest.raises(TypeError):
        assert AAL.AAL1 <= 2
    with pytest.raises(TypeError):
        assert AAL.AAL1 >= 2


def test_is_active() -> None:
    session = Session.from_json(WHOAMI)
    before = datetime(2025, 5, 27, 8, tzinfo=timezone.utc)
    assert session.is_active(before)
    assert not session.is_active(session.expires_at or before)
    assert not Session.from_json({**WHOAMI, "active": False}).is_active(before)
    disabled = {**WHOAMI, "identity": {**WHOAMI["identity"], "state": "inactive"}}
    assert not Session.from_json(disabled).is_active(before)
    assert Session.from_json({**WHOAMI, "expires_at": None}).is_active(before + timedelta(days=900))


# ----------------------------------------------------------------------------- Credentials


def test_credentials_precedence_is_kratos_own() -> None:
    headers = {
        "X-Session-Token": "ory_st_header",
        "Cookie": "ory_kratos_session=cookie-value",
        "Authorization": "Bearer ory_st_bearer",
    }
    assert Credentials.from_headers(headers).token == "ory_st_header"
    del headers["X-Session-Token"]
    picked = Credentials.from_headers(headers)
    assert (picked.cookie, picked.token) == ("cookie-value", None)
    del headers["Cookie"]
    picked = Credentials.from_headers(headers)
    assert (picked.token, picked.bearer, picked.is_token) == ("ory_st_bearer", True, True)


def test_credentials_keep_only_the_winner() -> None:
    both = Credentials(cookie="c", token="ory_st_t")
    assert (both.cookie, both.token) == (None, "ory_st_t")
    assert not Credentials() and not Credentials(cookie="", token="")
    assert Credentials(cookie="c") and not Credentials(cookie="c").is_token


def test_from_headers_reads_asgi_pairs_and_every_cookie_header() -> None:
    pairs = [(b"cookie", b"a=1"), (b"cookie", b"b=2; ory_session_slug=v"), (b"host", b"x")]
    assert Credentials.from_headers(pairs, cookie_name="ory_session_slug").cookie == "v"
    assert Credentials.from_headers([("Cookie", 'ory_kratos_session="quoted"')]).cookie == "quoted"
    # The first cookie of that name wins, as in Go's Request.Cookie.
    assert (
        Credentials.from_headers(
            {"Cookie": "ory_kratos_session=one; ory_kratos_session=two"}
        ).cookie
        == "one"
    )


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({}, id="nothing"),
        pytest.param({"Cookie": "other=1; theme=dark"}, id="other-cookies"),
        pytest.param({"Cookie": "ory_kratos_session="}, id="empty-cookie"),
        pytest.param({"Cookie": "ory_kratos_session=a b"}, id="space-in-cookie"),
        pytest.param({"Cookie": "ory_kratos_session=a\r\nX-Evil: 1"}, id="crlf-in-cookie"),
        pytest.param(
            {"Cookie": "ory_kratos_session=" + "a" * (MAX_CREDENTIAL_LENGTH + 1)}, id="oversized"
        ),
        pytest.param([(b"cookie", b"ory_kratos_session=\xff\xfe")], id="non-utf8"),
        pytest.param({"Authorization": "Basic dXNlcjpwYXNz"}, id="basic-auth"),
        pytest.param({"Authorization": "Bearer"}, id="bearer-empty"),
        pytest.param({"Authorization": "Bearer a b"}, id="bearer-three-parts"),
        pytest.param({"X-Session-Token": "bad token"}, id="invalid-x-session-token"),
        pytest.param(
            {"X-Session-Token": "bad\ttoken", "Cookie": "ory_kratos_session=ok"}, id="no-fallback"
        ),
    ],
)
def test_from_headers_absent_or_malformed_is_nothing(headers: Any) -> None:
    assert not Credentials.from_headers(headers)


def test_credentials_constructor_rejects_what_kratos_never_issues() -> None:
    with pytest.raises(ValueError, match="token"):
        Credentials(token="a b")
    with pytest.raises(ValueError, match="cookie"):
        Credentials(cookie="a;b")
    with pytest.raises(ValueError, match="cookie") as raised:
        Credentials(cookie="secret\nvalue")
    assert "secret" not in str(raised.value)


def test_credentials_repr_and_cache_key_hide_the_value() -> None:
    token = Credentials(token="ory_st_abcdefghijklmnopqrstuvwxyz012345")
    cookie = Credentials(cookie="MTcxNjc5-secret-cookie")
    assert repr(token) == "Credentials(token=<redacted>)"
    assert repr(cookie) == "Credentials(cookie=<redacted>)"
    assert repr(Credentials()) == "Credentials()"
    assert b"secret" not in cookie.cache_key() and len(cookie.cache_key()) == 16
    assert cookie.cache_key() == Credentials(cookie="MTcxNjc5-secret-cookie").cache_key()
    # A cookie and a token with the same text are different credentials.
    assert Credentials(cookie="ory_st_x").cache_key() != Credentials(token="ory_st_x").cache_key()

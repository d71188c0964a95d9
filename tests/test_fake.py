"""FakeKratos answers as BEHAVIOR.md says, in shapes that match Kratos's openapi.json."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from kratos_aal.testing import FakeClock, FakeKratos

from .openapi import assert_valid, errors, sdk_errors

JSON = {"Accept": "application/json"}
BROWSER_ACCEPT = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
APP = "http://127.0.0.1:8000/billing"


@pytest.fixture
def strict() -> FakeKratos:
    """Kratos with its defaults: required_aal highest_available everywhere."""
    return FakeKratos(clock=FakeClock(frozen=True))


def client_for(fake: FakeKratos, **kwargs: Any) -> httpx.Client:
    return httpx.Client(transport=fake.transport(), base_url=fake.public_url, **kwargs)


@pytest.fixture
def api(strict: FakeKratos) -> Iterator[httpx.Client]:
    with client_for(strict) as client:
        yield client


def form_of(flow: dict[str, Any]) -> dict[str, Any]:
    return {
        n["attributes"]["name"]: n["attributes"].get("value")
        for n in flow["ui"]["nodes"]
        if n["type"] == "input"
    }


def flow_id(location: str) -> str:
    return parse_qs(urlsplit(location).query)["flow"][0]


# ----------------------------------------------------------------------------- whoami (§1)


def test_whoami_401_has_no_error_id(api: httpx.Client) -> None:
    response = api.get("/sessions/whoami")
    assert response.status_code == 401
    assert response.json() == {
        "error": {
            "code": 401,
            "status": "Unauthorized",
            "reason": "No valid session credentials found in the request.",
            "message": "The request could not be authorized",
        }
    }
    assert response.headers["Content-Type"] == "application/json"
    assert response.headers["Ory-Error-Id"] == ""
    assert response.headers["Cache-Control"] == "private, no-cache, no-store, must-revalidate"
    assert_valid("errorGeneric", response.json())


def test_whoami_200(strict: FakeKratos, api: httpx.Client) -> None:
    session = strict.session("aal2")
    response = api.get("/sessions/whoami", headers={"Cookie": session.cookie_header})
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json; charset=utf-8"
    assert response.headers["X-Kratos-Authenticated-Identity-Id"] == session.identity.id
    body = response.json()
    assert_valid("session", body)
    assert body["id"] == session.id and body["active"] is True
    assert body["authenticator_assurance_level"] == "aal2"
    assert [m["method"] for m in body["authentication_methods"]] == ["password", "totp"]
    assert "credentials" not in body["identity"] and "metadata_admin" not in body["identity"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z", body["expires_at"])
    assert "Set-Cookie" not in response.headers
    assert "Ory-Session-Cache-For" not in response.headers


def test_whoami_403_under_highest_available(strict: FakeKratos, api: httpx.Client) -> None:
    session = strict.session("aal1", totp=True)
    response = api.get("/sessions/whoami", headers=session.headers)
    assert response.status_code == 403
    target = "http://127.0.0.1:4433/self-service/login/browser?aal=aal2"
    assert response.json() == {
        "error": {
            "id": "session_aal2_required",
            "code": 403,
            "status": "Forbidden",
            "reason": "An active session was found but it does not fulfill the requested Authenticator "
            "Assurance Level. Please verify yourself with a second factor to resolve this issue.",
            "details": {"redirect_browser_to": target},
            "message": "Session does not fulfill the requested Authenticator Assurance Level",
        },
        "redirect_browser_to": target,
    }
    assert response.headers["Ory-Error-Id"] == "session_aal2_required"
    # openapi.json declares genericError.details with additionalProperties: false; Kratos
    # sends details.redirect_browser_to all the same (BEHAVIOR.md §1). Only that differs.
    assert errors("errorAuthenticatorAssuranceLevelNotSatisfied", response.json()) == [
        "['error', 'details']: Additional properties are not allowed ('redirect_browser_to' was unexpected)"
    ]


def test_whoami_required_aal_modes() -> None:
    for mode, expected in (("aal1", 200), ("highest_available", 403)):
        fake = FakeKratos(whoami_required_aal=mode)  # type: ignore[arg-type]
        with client_for(fake) as api:
            assert (
                api.get(
                    "/sessions/whoami", headers=fake.session("aal1", totp=True).headers
                ).status_code
                == expected
            )
            # Without a second factor, aal1 passes in both modes; aal2 always passes.
            assert (
                api.get("/sessions/whoami", headers=fake.session("aal1").headers).status_code == 200
            )
            assert (
                api.get("/sessions/whoami", headers=fake.session("aal2").headers).status_code == 200
            )


def test_whoami_answers_every_registered_method(strict: FakeKratos, api: httpx.Client) -> None:
    session = strict.session("aal1")
    for method in ("GET", "HEAD", "POST", "PUT", "PATCH", "OPTIONS", "TRACE"):
        assert api.request(method, "/sessions/whoami", headers=session.headers).status_code == 200
    # session/handler.go deleteMySession answers DELETE /sessions/whoami as whoami.
    assert api.delete("/sessions/whoami", headers=session.headers).status_code == 200


def test_token_precedence(strict: FakeKratos, api: httpx.Client) -> None:
    session = strict.session("aal1")
    # An invalid X-Session-Token is a 401 even with a valid cookie: no fallback.
    both = api.get(
        "/sessions/whoami",
        headers={"X-Session-Token": "ory_st_wrong", "Cookie": session.cookie_header},
    )
    assert both.status_code == 401
    assert (
        api.get(
            "/sessions/whoami", headers={"Authorization": f"bearer {session.token}"}
        ).status_code
        == 200
    )
    assert (
        api.get(
            "/sessions/whoami", headers={"Authorization": f"Bearer {session.token} x"}
        ).status_code
        == 401
    )
    assert re.fullmatch(r"ory_st_[A-Za-z0-9]{32}", session.token)


@pytest.mark.parametrize(
    "change",
    ["revoke", "expire", "disable"],
)
def test_inactive_sessions_are_401(strict: FakeKratos, api: httpx.Client, change: str) -> None:
    session = strict.session("aal1")
    if change == "revoke":
        strict.revoke(session)
    elif change == "expire":
        strict.clock.advance(strict.session_lifespan + 1)
    else:
        strict.disable(session.identity)
    assert api.get("/sessions/whoami", headers={"Cookie": session.cookie_header}).status_code == 401


def test_whoami_reissues_the_cookie_after_extend(strict: FakeKratos, api: httpx.Client) -> None:
    session = strict.session("aal1")
    strict.extend(session, 3600)
    assert "Set-Cookie" not in api.get("/sessions/whoami", headers=session.headers).headers
    refreshed = api.get("/sessions/whoami", headers={"Cookie": session.cookie_header})
    new_cookie = refreshed.cookies[strict.cookie_name]
    assert new_cookie != session.cookie
    assert (
        api.get(
            "/sessions/whoami", headers={"Cookie": f"{strict.cookie_name}={new_cookie}"}
        ).json()["id"]
        == session.id
    )


def test_cacheable_sessions_header() -> None:
    fake = FakeKratos(cacheable_sessions=30)
    with client_for(fake) as api:
        response = api.get("/sessions/whoami", headers=fake.session("aal1").headers)
        assert response.headers["Ory-Session-Cache-For"] == "30"


# ----------------------------------------------------------------------------- login (§3)


def test_aal2_without_session_is_session_aal1_required(api: httpx.Client) -> None:
    response = api.get("/self-service/login/api", params={"aal": "aal2"})
    assert response.status_code == 401
    assert response.json() == {
        "error": {
            "id": "session_aal1_required",
            "code": 401,
            "status": "Unauthorized",
            "reason": "You can not requested a higher AAL (AAL2/AAL3) without an active session.",
            "message": "aal2 and aal3 can only be requested if a session exists already",
        }
    }
    spa = api.get(
        "/self-service/login/browser", params={"aal": "aal2", "refresh": "true"}, headers=JSON
    )
    assert spa.json()["error"]["id"] == "session_aal1_required"


def test_browser_errors_are_forwarded_to_the_error_ui(
    strict: FakeKratos, api: httpx.Client
) -> None:
    response = api.get(
        "/self-service/login/browser", params={"aal": "aal2"}, headers=BROWSER_ACCEPT
    )
    assert response.status_code == 303
    location = response.headers["Location"]
    assert location.startswith(f"{strict.ui_url}/error?id=")
    stored = api.get(
        "/self-service/errors", params={"id": parse_qs(urlsplit(location).query)["id"][0]}
    )
    assert stored.json()["error"]["id"] == "session_aal1_required"
    assert_valid("flowError", stored.json())
    assert api.get("/self-service/errors", params={"id": "nope"}).status_code == 404


def test_bad_aal_is_400(api: httpx.Client) -> None:
    response = api.get("/self-service/login/api", params={"aal": "aal3"})
    assert response.status_code == 400
    assert response.json()["error"]["reason"] == (
        "Unable to parse AuthenticationMethod Assurance Level (AAL): expected one of [aal1, aal2] but got aal3"
    )
    assert (
        api.get("/self-service/login/browser", params={"aal": "x"}, headers=JSON).status_code == 400
    )


def test_already_logged_in(strict: FakeKratos, api: httpx.Client) -> None:
    session = strict.session("aal2")
    response = api.get("/self-service/login/api", headers=session.headers)
    assert response.status_code == 400
    assert response.json()["error"]["id"] == "session_already_available"
    browser = api.get(
        "/self-service/login/browser",
        params={"return_to": APP, "aal": "aal2"},
        headers={"Cookie": session.cookie_header},
    )
    # The redirect-loop hazard: an aal2 session asked for aal2 bounces straight back.
    assert (browser.status_code, browser.headers["Location"]) == (303, APP)
    assert "Set-Cookie" not in browser.headers
    plain = api.get("/self-service/login/browser", headers={"Cookie": session.cookie_header})
    assert plain.headers["Location"] == strict.default_return_url


def test_return_to_must_be_allowed(api: httpx.Client) -> None:
    response = api.get("/self-service/login/api", params={"return_to": "https://evil.example/x"})
    assert response.status_code == 400
    assert response.json() == {
        "error": {
            "id": "self_service_flow_return_to_forbidden",
            "code": 400,
            "status": "Bad Request",
            "reason": 'Requested return_to URL "https://evil.example/x" is not allowed.',
            "message": "The request was malformed or contained invalid parameters",
        }
    }
    for bad in ("//evil.example", "javascript:alert(1)", "http://127.0.0.1.evil.example/"):
        assert api.get("/self-service/login/api", params={"return_to": bad}).status_code == 400
    assert api.get("/self-service/login/api", params={"return_to": APP}).status_code == 200


def test_allowed_return_urls_wildcards_and_paths() -> None:
    fake = FakeKratos(allowed_return_urls=["https://*.example.com/app", "http://localhost:3000"])
    assert fake._allowed_return_to("https://a.example.com/app/x")
    assert not fake._allowed_return_to("https://a.example.com/other")
    assert not fake._allowed_return_to("http://a.example.com/app")
    assert fake._allowed_return_to("http://localhost:3000/")
    assert not fake._allowed_return_to("http://localhost:3001/")


def test_login_flow_shape(strict: FakeKratos, api: httpx.Client) -> None:
    response = api.get("/self-service/login/browser", params={"return_to": APP}, headers=JSON)
    assert response.status_code == 200
    flow = response.json()
    assert_valid("loginFlow", flow)
    assert (
        flow["type"] == "browser" and flow["requested_aal"] == "aal1" and flow["refresh"] is False
    )
    assert flow["return_to"] == APP
    assert flow["ui"]["action"] == f"{strict.public_url}/self-service/login?flow={flow['id']}"
    assert set(form_of(flow)) == {"csrf_token", "identifier", "password", "method"}
    assert strict.csrf_cookie_name in response.cookies
    fetched = api.get("/self-service/login/flows", params={"id": flow["id"]})
    assert fetched.json()["id"] == flow["id"]
    assert api.get("/self-service/login/flows", params={"id": "missing"}).status_code == 404
    # A browser flow fetched without its CSRF cookie is refused.
    with client_for(strict) as other:
        assert other.get("/self-service/login/flows", params={"id": flow["id"]}).status_code == 403


def test_browser_login_init_redirects_to_the_ui(strict: FakeKratos, api: httpx.Client) -> None:
    response = api.get("/self-service/login/browser", headers=BROWSER_ACCEPT)
    assert response.status_code == 303
    assert response.headers["Location"].startswith(f"{strict.ui_url}/login?flow=")


def test_step_up_flow_without_a_second_factor_has_only_csrf(
    strict: FakeKratos, api: httpx.Client
) -> None:
    session = strict.session("aal1", totp=False)
    api.cookies.update(session.cookies)
    flow = api.get("/self-service/login/browser", params={"aal": "aal2"}, headers=JSON).json()
    assert_valid("loginFlow", flow)
    assert [n["attributes"]["name"] for n in flow["ui"]["nodes"]] == ["csrf_token"]
    assert [m["id"] for m in flow["ui"]["messages"]] == [1010004]
    # Posting TOTP anyway: 4000011, the dead end kratos-aal's ENROLL avoids.
    spa = api.post(
        f"/self-service/login?flow={flow['id']}",
        headers=JSON,
        json={"method": "totp", "totp_code": "123456", "csrf_token": form_of(flow)["csrf_token"]},
    )
    assert spa.status_code == 400
    assert spa.json()["ui"]["messages"][0] == {
        "id": 4000011,
        "text": "You have no TOTP device set up.",
        "type": "error",
    }
    browser = api.post(
        f"/self-service/login?flow={flow['id']}",
        data={"method": "totp", "totp_code": "123456", "csrf_token": form_of(flow)["csrf_token"]},
    )
    assert browser.status_code == 303 and browser.headers["Location"].endswith(
        f"/login?flow={flow['id']}"
    )


def test_totp_login_nodes(strict: FakeKratos, api: httpx.Client) -> None:
    session = strict.session("aal1", totp=True)
    flow = api.get(
        "/self-service/login/api",
        params={"aal": "aal2", "refresh": "true"},
        headers=session.headers,
    ).json()
    assert_valid("loginFlow", flow)
    nodes = {n["attributes"]["name"]: n for n in flow["ui"]["nodes"]}
    assert set(nodes) == {"totp_code", "method"}  # API flows carry no csrf_token
    assert nodes["totp_code"]["meta"]["label"]["id"] == 1010006
    assert nodes["totp_code"]["attributes"]["required"] is True
    assert nodes["method"]["attributes"]["value"] == "totp"
    assert [m["id"] for m in flow["ui"]["messages"]] == [1010003, 1010004]


def browser_login(
    fake: FakeKratos,
    client: httpx.Client,
    email: str,
    password: str,
    params: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    flow = client.get("/self-service/login/browser", params=params or {}, headers=JSON).json()
    body = {
        "method": "password",
        "identifier": email,
        "password": password,
        "csrf_token": form_of(flow)["csrf_token"],
    }
    if headers:
        return client.post(f"/self-service/login?flow={flow['id']}", json=body, headers=headers)
    return client.post(f"/self-service/login?flow={flow['id']}", data=body)


def test_password_login_browser_spa_and_api(strict: FakeKratos) -> None:
    identity = strict.create_identity("ada@example.com", "pw")
    with client_for(strict) as browser:
        done = browser_login(strict, browser, "ada@example.com", "pw", {"return_to": APP})
        assert (done.status_code, done.headers["Location"]) == (303, APP)
        cookie = done.cookies[strict.cookie_name]
        assert "HttpOnly" in done.headers["Set-Cookie"]
        whoami = browser.get("/sessions/whoami").json()
        assert (
            whoami["identity"]["id"] == identity.id
            and whoami["authenticator_assurance_level"] == "aal1"
        )
        assert cookie
    with client_for(strict) as spa:
        done = browser_login(strict, spa, "ada@example.com", "pw", {"return_to": APP}, headers=JSON)
        assert done.status_code == 200
        body = done.json()
        assert body["continue_with"] == [
            {"action": "redirect_browser_to", "redirect_browser_to": APP}
        ]
        assert "session_token" not in body
        assert_valid("successfulNativeLogin", body)
    with client_for(strict) as api:
        flow = api.get("/self-service/login/api").json()
        done = api.post(
            f"/self-service/login?flow={flow['id']}",
            json={"method": "password", "identifier": "ada@example.com", "password": "pw"},
        )
        assert done.status_code == 200
        assert_valid("successfulNativeLogin", done.json())
        assert done.json()["session_token"].startswith("ory_st_")
        wrong = api.post(
            f"/self-service/login?flow={flow['id']}",
            json={"method": "password", "identifier": "ada@example.com", "password": "nope"},
        )
        assert wrong.status_code == 400
        assert wrong.json()["ui"]["messages"][0]["id"] == 4000006


def test_password_login_of_a_2fa_user_under_highest_available(strict: FakeKratos) -> None:
    strict.create_identity("bob@example.com", "pw", totp=True)
    with client_for(strict) as spa:
        done = browser_login(strict, spa, "bob@example.com", "pw", {"return_to": APP}, headers=JSON)
        target = "http://127.0.0.1:4433/self-service/login/browser?aal=aal2&return_to=http%3A%2F%2F127.0.0.1%3A8000%2Fbilling"
        assert done.status_code == 422
        assert done.json() == {
            "error": {
                "id": "browser_location_change_required",
                "code": 422,
                "status": "Unprocessable Entity",
                "reason": f"In order to complete this flow please redirect the browser to: {target}",
                "message": "browser location change required",
            },
            "redirect_browser_to": target,
        }
    with client_for(strict) as browser:
        done = browser_login(strict, browser, "bob@example.com", "pw", {"return_to": APP})
        assert (done.status_code, done.headers["Location"]) == (303, target)
    with client_for(strict) as api:
        flow = api.get("/self-service/login/api").json()
        done = api.post(
            f"/self-service/login?flow={flow['id']}",
            json={"method": "password", "identifier": "bob@example.com", "password": "pw"},
        )
        assert done.status_code == 200 and done.json()["session"]["identity"] is None


def test_step_up_keeps_session_id_and_token_and_changes_the_cookie(strict: FakeKratos) -> None:
    session = strict.session("aal1", totp=True)
    with client_for(strict, cookies=session.cookies) as browser:
        flow = browser.get(
            "/self-service/login/browser", params={"aal": "aal2", "return_to": APP}, headers=JSON
        ).json()
        wrong = browser.post(
            f"/self-service/login?flow={flow['id']}",
            headers=JSON,
            json={
                "method": "totp",
                "totp_code": "000000",
                "csrf_token": form_of(flow)["csrf_token"],
            },
        )
        assert wrong.json()["ui"]["messages"][0]["id"] == 4000008
        done = browser.post(
            f"/self-service/login?flow={flow['id']}",
            data={
                "method": "totp",
                "totp_code": strict.totp_code(session.identity),
                "csrf_token": form_of(flow)["csrf_token"],
            },
        )
        assert (done.status_code, done.headers["Location"]) == (303, APP)
        new_cookie = done.cookies[strict.cookie_name]
        assert new_cookie != session.cookie
    body = strict.session_json(session)
    assert body["id"] == session.id and body["authenticator_assurance_level"] == "aal2"
    assert [m["method"] for m in body["authentication_methods"]] == ["password", "totp"]
    with client_for(strict) as api:
        # The same token now sees aal2; the old cookie string still works too.
        assert (
            api.get("/sessions/whoami", headers=session.headers).json()[
                "authenticator_assurance_level"
            ]
            == "aal2"
        )
        assert (
            api.get("/sessions/whoami", headers={"Cookie": session.cookie_header}).json()["id"]
            == session.id
        )


def test_totp_without_session_on_aal2_flow(strict: FakeKratos) -> None:
    session = strict.session("aal1", totp=True)
    with client_for(strict) as api:
        flow = api.get(
            "/self-service/login/api", params={"aal": "aal2"}, headers=session.headers
        ).json()
        done = api.post(
            f"/self-service/login?flow={flow['id']}", json={"method": "totp", "totp_code": "1"}
        )
        assert done.status_code == 401 and done.json()["error"]["id"] == "session_aal1_required"


def test_expired_flow_is_410_with_a_replacement(strict: FakeKratos, api: httpx.Client) -> None:
    flow = api.get("/self-service/login/api").json()
    strict.clock.advance(strict.login_lifespan + 60)
    done = api.post(f"/self-service/login?flow={flow['id']}", json={"method": "password"})
    assert done.status_code == 410
    body = done.json()
    assert body["error"]["id"] == "self_service_flow_expired"
    assert (
        body["error"]["reason"]
        == "The self-service flow expired 1.00 minutes ago, initialize a new one."
    )
    assert_valid("selfServiceFlowExpiredError", body)
    assert (
        api.get("/self-service/login/flows", params={"id": body["use_flow_id"]}).status_code == 200
    )


def test_browser_submit_without_csrf_is_refused(strict: FakeKratos, api: httpx.Client) -> None:
    strict.create_identity("c@example.com", "pw")
    flow = api.get("/self-service/login/browser", headers=JSON).json()
    done = api.post(
        f"/self-service/login?flow={flow['id']}",
        data={"method": "password", "identifier": "c@example.com", "password": "pw"},
    )
    # A browser form gets the error UI (errorx.Forward); the stored error is the 403.
    assert done.status_code == 303
    error_id = done.headers["Location"].split("id=")[1]
    stored = api.get("/self-service/errors", params={"id": error_id}).json()
    assert stored["error"]["id"] == "security_csrf_violation"
    assert stored["error"]["code"] == 403


# ----------------------------------------------------------------------------- settings (§5)


def test_settings_without_session(strict: FakeKratos, api: httpx.Client) -> None:
    response = api.get("/self-service/settings/browser", headers=JSON)
    assert response.status_code == 401
    assert response.json()["error"] == {
        "id": "session_inactive",
        "code": 401,
        "status": "Unauthorized",
        "reason": "No active session was found in this request.",
        "message": "request does not have a valid authentication session",
    }
    browser = api.get("/self-service/settings/browser", params={"return_to": APP})
    assert browser.status_code == 303
    assert browser.headers["Location"] == (
        f"{strict.public_url}/self-service/login/browser?return_to=http%3A%2F%2F127.0.0.1%3A8000%2Fbilling"
    )
    assert api.get("/self-service/settings/api").json()["error"]["reason"] == (
        "This endpoint can only be accessed with a valid session. Please log in and try again."
    )


def test_settings_demands_aal2_of_2fa_users(strict: FakeKratos, api: httpx.Client) -> None:
    session = strict.session("aal1", totp=True)
    response = api.get(
        "/self-service/settings/browser",
        params={"return_to": APP},
        headers={**JSON, "Cookie": session.cookie_header},
    )
    assert response.status_code == 403
    assert response.json()["error"]["id"] == "session_aal2_required"
    target = parse_qs(urlsplit(response.json()["redirect_browser_to"]).query)
    assert target["aal"] == ["aal2"]
    assert target["return_to"][0].startswith(
        f"{strict.public_url}/self-service/settings/browser?return_to="
    )
    assert (
        "return_to"
        not in api.get("/self-service/settings/api", headers=session.headers).json()[
            "redirect_browser_to"
        ]
    )


def test_totp_pairing_upgrades_in_place(strict: FakeKratos) -> None:
    session = strict.session("aal1", totp=False)
    with client_for(strict, cookies=session.cookies) as browser:
        flow = browser.get(
            "/self-service/settings/browser", params={"return_to": APP}, headers=JSON
        ).json()
        assert_valid("settingsFlow", flow)
        nodes = {
            n["attributes"].get("id") or n["attributes"].get("name"): n for n in flow["ui"]["nodes"]
        }
        assert set(nodes) == {
            "csrf_token",
            "traits.email",
            "password",
            "totp_qr",
            "totp_secret_key",
            "totp_code",
            "method",
        }
        assert nodes["totp_qr"]["attributes"]["src"].startswith("data:image/png;base64,")
        assert nodes["totp_qr"]["meta"]["label"]["id"] == 1050005
        secret = nodes["totp_secret_key"]["attributes"]["text"]["context"]["secret"]
        assert nodes["totp_secret_key"]["attributes"]["text"]["id"] == 1050006
        assert secret == strict.pending_totp_secret(flow["id"])
        assert nodes["totp_code"]["meta"]["label"]["id"] == 1070006
        csrf = nodes["csrf_token"]["attributes"]["value"]
        wrong = browser.post(
            f"/self-service/settings?flow={flow['id']}",
            headers=JSON,
            json={"method": "totp", "totp_code": "000000", "csrf_token": csrf},
        )
        assert wrong.status_code == 400 and "messages" not in wrong.json()["ui"]
        code_node = next(
            n for n in wrong.json()["ui"]["nodes"] if n["attributes"].get("name") == "totp_code"
        )
        assert [m["id"] for m in code_node["messages"]] == [4000008]
        done = browser.post(
            f"/self-service/settings?flow={flow['id']}",
            data={
                "method": "totp",
                "csrf_token": csrf,
                "totp_code": strict.totp_code(session.identity, secret=secret),
            },
        )
        assert (done.status_code, done.headers["Location"]) == (303, APP)
        assert done.cookies[strict.cookie_name] != session.cookie
        paired = browser.get("/self-service/settings/browser", headers=JSON).json()
        totp = [n for n in paired["ui"]["nodes"] if n["group"] in ("default", "totp")]
        assert [n["attributes"]["name"] for n in totp] == ["csrf_token", "totp_unlink"]
    body = strict.session_json(session)
    assert body["id"] == session.id and body["authenticator_assurance_level"] == "aal2"
    assert [m["method"] for m in body["authentication_methods"]] == ["password", "totp"]


def test_settings_spa_success_has_continue_with(strict: FakeKratos) -> None:
    session = strict.session("aal1")
    with client_for(strict, cookies=session.cookies) as spa:
        flow = spa.get(
            "/self-service/settings/browser", params={"return_to": APP}, headers=JSON
        ).json()
        secret = strict.pending_totp_secret(flow["id"])
        done = spa.post(
            f"/self-service/settings?flow={flow['id']}",
            headers=JSON,
            json={
                "method": "totp",
                "csrf_token": form_of(flow)["csrf_token"],
                "totp_code": strict.totp_code(session.identity, secret=secret),
            },
        )
        assert done.status_code == 200
        body = done.json()
        assert body["state"] == "success" and body["ui"]["messages"][0]["id"] == 1050001
        assert body["continue_with"] == [
            {"action": "redirect_browser_to", "redirect_browser_to": APP}
        ]
        assert_valid("settingsFlow", body)


def test_settings_privileged_check(strict: FakeKratos) -> None:
    session = strict.session("aal1", authenticated_at=3601)
    with client_for(strict) as api:
        flow = api.get("/self-service/settings/api", headers=session.headers).json()
        done = api.post(
            f"/self-service/settings?flow={flow['id']}",
            headers=session.headers,
            json={"method": "totp", "totp_code": "123456"},
        )
        assert done.status_code == 403
        body = done.json()
        assert body["error"]["id"] == "session_refresh_required"
        assert body["redirect_browser_to"] == (
            f"{strict.public_url}/self-service/login/browser?refresh=true&return_to="
            f"http%3A%2F%2F127.0.0.1%3A4433%2Fself-service%2Fsettings%3Fflow%3D{flow['id']}"
        )
        assert_valid("needsPrivilegedSessionError", body)


def test_settings_flow_of_another_identity(strict: FakeKratos) -> None:
    first, second = strict.session("aal1"), strict.session("aal1")
    with client_for(strict) as api:
        flow = api.get("/self-service/settings/api", headers=first.headers).json()
        done = api.post(
            f"/self-service/settings?flow={flow['id']}",
            headers=second.headers,
            json={"method": "totp", "totp_code": "1"},
        )
        assert done.json()["error"]["id"] == "security_identity_mismatch"


@pytest.mark.parametrize(
    "submit",
    [{"method": "totp", "totp_unlink": True}, {"totp_unlink": True}],
    ids=["with-method", "button-alone"],
)
def test_unlink_totp(strict: FakeKratos, submit: dict[str, Any]) -> None:
    """The unlink button sends ``totp_unlink=true`` without ``method=totp``; Kratos's TOTP
    strategy takes it as its own (selfservice/strategy/totp/settings.go)."""
    session = strict.session("aal2")
    with client_for(strict) as api:
        flow = api.get("/self-service/settings/api", headers=session.headers).json()
        done = api.post(
            f"/self-service/settings?flow={flow['id']}",
            headers=session.headers,
            json=submit,
        )
        assert done.status_code == 200
    assert session.identity.totp_secret is None


# ----------------------------------------------------------------------------- logout, admin


def test_logout_browser_and_api(strict: FakeKratos) -> None:
    session = strict.session("aal1")
    with client_for(strict, cookies=session.cookies) as browser:
        flow = browser.get("/self-service/logout/browser", params={"return_to": APP}).json()
        assert_valid("logoutFlow", flow)
        done = browser.get(flow["logout_url"].removeprefix(strict.public_url))
        assert (done.status_code, done.headers["Location"]) == (303, APP)
        assert (
            browser.get("/sessions/whoami", headers={"Cookie": session.cookie_header}).status_code
            == 401
        )
    other = strict.session("aal1")
    with client_for(strict) as api:
        assert (
            api.request(
                "DELETE", "/self-service/logout/api", json={"session_token": other.token}
            ).status_code
            == 204
        )
        assert api.get("/sessions/whoami", headers=other.headers).status_code == 401
        assert (
            api.request(
                "DELETE", "/self-service/logout/api", json={"session_token": "x"}
            ).status_code
            == 403
        )
        assert api.get("/self-service/logout/browser", headers=JSON).status_code == 401


def test_admin_identity(strict: FakeKratos) -> None:
    fake = FakeKratos(admin_token="admin-secret")
    identity = fake.create_identity("d@example.com", totp=True)
    with httpx.Client(transport=fake.transport(), base_url=fake.admin_url) as api:
        assert api.get(f"/admin/identities/{identity.id}").status_code == 401
        auth = {"Authorization": "Bearer admin-secret"}
        body = api.get(
            f"/admin/identities/{identity.id}", params={"include_credential": "totp"}, headers=auth
        ).json()
        assert_valid("identity", body)
        assert body["credentials"]["totp"]["config"]["totp_url"].startswith("otpauth://totp/")
        plain = api.get(f"/admin/identities/{identity.id}", headers=auth).json()
        assert "config" not in plain["credentials"]["totp"]
        assert api.get("/admin/identities/unknown", headers=auth).status_code == 404


# ----------------------------------------------------------------------------- serving


async def test_served_by_uvicorn_on_a_real_port(strict: FakeKratos) -> None:
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(strict, host="127.0.0.1", port=0, log_level="error"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    session = strict.session("aal2")
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
        response = await client.get("/sessions/whoami", headers={"Cookie": session.cookie_header})
        assert response.status_code == 200 and response.json()["id"] == session.id
        flow = await client.post("/self-service/login?flow=nope", content=b"method=password")
        assert flow.status_code == 404
    server.should_exit = True
    await task


def test_unknown_route_is_404(api: httpx.Client) -> None:
    assert api.get("/nope").status_code == 404


# ---------------------------------------------------- the latest release, not main (issue 11)


def test_login_flow_parses_in_ory_sdk_as_the_release_sends_it() -> None:
    """The identifier node has no ``autocomplete`` in Kratos v26.2.0 (BEHAVIOR.md, opening).

    Neither v26.2.0 nor the reference commit sends ``autocomplete: "username"``, so the
    fake has no option that produces it (issue 24 item 17).
    """
    with client_for(FakeKratos()) as api:
        flow = api.get("/self-service/login/api").json()
    identifier = next(n for n in flow["ui"]["nodes"] if n["attributes"].get("name") == "identifier")
    assert "autocomplete" not in identifier["attributes"]
    assert sdk_errors("loginFlow", flow) == []
    with pytest.raises(TypeError):
        FakeKratos(unreleased=True)  # type: ignore[call-arg]


# ----------------------------------------------------------------- the self-service pages


@pytest.mark.parametrize(
    ("app_url", "expected"),
    [("http://127.0.0.1:8000/", "http://127.0.0.1:8000/"), (None, "http://127.0.0.1:8000/")],
    ids=["app-url", "home-of-return-to"],
)
def test_back_to_the_app_leads_home_not_to_the_protected_page(
    app_url: str | None, expected: str
) -> None:
    fake = FakeKratos(app_url=app_url)
    identity = fake.create_identity("bob@example.com", "pw")
    session = fake.session("aal1", identity=identity)
    with client_for(fake, cookies=session.cookies) as browser:
        started = browser.get("/self-service/settings/browser", params={"return_to": APP})
        page = browser.get(started.headers["location"].removeprefix(fake.public_url))
    assert page.status_code == 200
    assert f'href="{expected}"' in page.text
    assert f'href="{APP}"' not in page.text
    assert "The page you came from needs a second factor" in page.text

"""FakeKratos answers as Kratos v26.2.0 does: the second pass (issue 24).

Each docstring names where Kratos defines the behaviour: a file of Kratos's source at
v26.2.0 or a section of ``BEHAVIOR.md``. Item numbers are the issue's.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pyotp
import pytest

from kratos_aal.testing import FakeClock, FakeKratos, FakeSession, serve

from ..openapi import assert_valid

JSON = {"Accept": "application/json"}
BROWSER = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}


@pytest.fixture
def fake() -> FakeKratos:
    return FakeKratos(clock=FakeClock(frozen=True))


@pytest.fixture
def public(fake: FakeKratos) -> Iterator[httpx.Client]:
    with httpx.Client(transport=fake.transport(), base_url=fake.public_url) as client:
        yield client


@pytest.fixture
def admin(fake: FakeKratos) -> Iterator[httpx.Client]:
    with httpx.Client(transport=fake.transport(), base_url=fake.admin_url) as client:
        yield client


def csrf_of(fake: FakeKratos, response: httpx.Response) -> str:
    for header in response.headers.get_list("set-cookie"):
        if header.startswith(fake.csrf_cookie_name + "="):
            return header.split(";")[0].split("=", 1)[1]
    raise AssertionError("no anti-CSRF cookie")


def browser_flow(
    fake: FakeKratos, client: httpx.Client, kind: str, session: FakeSession | None = None, **q: str
) -> tuple[dict[str, Any], str]:
    """Start a browser flow as an SPA does; return it and its anti-CSRF cookie."""
    headers = {**JSON, **({"Cookie": session.cookie_header} if session else {})}
    answer = client.get(f"/self-service/{kind}/browser", params=q, headers=headers)
    assert answer.status_code == 200, answer.text
    client.cookies.clear()  # each test sends the cookies it means to
    return answer.json(), csrf_of(fake, answer)


def cookies(session: FakeSession | None, fake: FakeKratos, csrf: str) -> str:
    parts = [f"{fake.csrf_cookie_name}={csrf}"]
    if session is not None:
        parts.append(session.cookie_header)
    return "; ".join(parts)


def messages(body: dict[str, Any]) -> list[int]:
    return [m["id"] for m in body["ui"].get("messages", [])]


def stored_error(client: httpx.Client, location: str) -> dict[str, Any]:
    assert "/error?id=" in location, location
    error_id = location.split("id=", 1)[1]
    body = client.get("/self-service/errors", params={"id": error_id}).json()
    error: dict[str, Any] = body["error"]
    return error


# ------------------------------------------------------------ item 1: return_to and ports


@pytest.mark.parametrize(
    ("allowed", "return_to", "ok"),
    [
        pytest.param("http://app.test/ok", "http://app.test:8080/ok", False, id="port-not-named"),
        pytest.param("http://app.test/ok", "http://app.test/ok/x", True, id="same-host"),
        pytest.param("http://app.test:8080/", "http://app.test:8080/ok", True, id="port-named"),
        pytest.param("http://app.test:8080/", "http://app.test:9090/ok", False, id="other-port"),
        pytest.param("http://*.app.test/", "http://a.app.test/x", True, id="wildcard"),
        pytest.param("http://*.app.test/", "http://a.app.test:8080/x", False, id="wildcard-port"),
        pytest.param("http://*.app.test:8080/", "http://a.app.test:8080/x", True, id="wc-named"),
    ],
)
def test_return_to_host_is_compared_with_its_port(allowed: str, return_to: str, ok: bool) -> None:
    """x/redir/secure_redirect.go SecureRedirectToIsAllowedHost: ``url.URL.Host``, which
    holds the port, is compared (equal, or by suffix for a ``*.`` entry)."""
    fake = FakeKratos(allowed_return_urls=[allowed])
    with httpx.Client(transport=fake.transport(), base_url=fake.public_url) as client:
        answer = client.get("/self-service/login/api", params={"return_to": return_to})
    assert answer.status_code == (200 if ok else 400)
    if not ok:
        assert answer.json()["error"]["id"] == "self_service_flow_return_to_forbidden"


# ------------------------------------------------- item 2: logged-in aal1 login submits


@pytest.mark.parametrize("password", ["wrong", "other"], ids=["wrong-password", "other-user"])
def test_logged_in_login_submit_is_refused_before_the_password(
    fake: FakeKratos, public: httpx.Client, password: str
) -> None:
    """selfservice/flow/login/handler.go updateLoginFlow: with a session, neither refresh
    nor a higher AAL, the submit is refused (4000001) before any strategy runs."""
    session = fake.session("aal1")
    other = fake.create_identity("other@example.com", "other password")
    flow = public.get("/self-service/login/api").json()  # started before logging in
    secret = "other password" if password == "other" else "nope"
    answer = public.post(
        f"/self-service/login?flow={flow['id']}",
        json={"method": "password", "identifier": other.email, "password": secret},
        headers=session.headers,
    )
    assert answer.status_code == 400
    assert messages(answer.json()) == [4000001]
    assert len([s for s in fake._sessions.values() if s.identity_id == other.id]) == 0


def test_logged_in_browser_login_submit_goes_home(fake: FakeKratos, public: httpx.Client) -> None:
    """selfservice/flow/login/handler.go updateLoginFlow: a browser gets a 303 to
    ``default_browser_return_url``, whatever the form holds."""
    flow, csrf = browser_flow(fake, public, "login")
    session = fake.session("aal1")
    answer = public.post(
        f"/self-service/login?flow={flow['id']}",
        data={"method": "password", "identifier": "x@example.com", "password": "nope"},
        headers={**BROWSER, "Cookie": cookies(session, fake, csrf)},
    )
    assert answer.status_code == 303
    assert answer.headers["Location"] == fake.default_return_url


# --------------------------------------------------------- item 3: Ory-Session-Cache-For


def test_cache_for_is_capped_by_the_time_left() -> None:
    """session/handler.go whoami: the smaller of the time left and the max age."""
    fake = FakeKratos(clock=FakeClock(frozen=True), cacheable_sessions=300)
    short, long = fake.session("aal1", expires_in=120), fake.session("aal1")
    with httpx.Client(transport=fake.transport(), base_url=fake.public_url) as client:
        first = client.get("/sessions/whoami", headers=short.headers)
        second = client.get("/sessions/whoami", headers=long.headers)
    assert first.headers["Ory-Session-Cache-For"] == "120"
    assert second.headers["Ory-Session-Cache-For"] == "300"


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({"Cookie": "theme=dark"}, id="unrelated-cookie"),
        pytest.param({"Authorization": "Basic dXNlcjpwdw=="}, id="basic-auth"),
    ],
)
def test_cache_for_60_whenever_no_token_is_found(headers: dict[str, str]) -> None:
    """session/handler.go whoami with session/manager.go NewErrNoCredentialsForSession:
    60 whenever no session token is found, whatever else the request carries."""
    fake = FakeKratos(cacheable_sessions=300)
    with httpx.Client(transport=fake.transport(), base_url=fake.public_url) as client:
        answer = client.get("/sessions/whoami", headers=headers)
        bad_token = client.get("/sessions/whoami", headers={"X-Session-Token": "ory_st_x"})
    assert answer.status_code == 401
    assert answer.headers["Ory-Session-Cache-For"] == "60"
    assert "Ory-Session-Cache-For" not in bad_token.headers


# ------------------------------------------------------------------ item 4: CSRF failures


def test_browser_form_with_a_bad_csrf_token_goes_to_the_error_ui(
    fake: FakeKratos, public: httpx.Client
) -> None:
    """selfservice/errorx/manager.go Forward: a browser form gets a 303 to the error UI,
    where the stored error is the 403 ``security_csrf_violation``."""
    flow, csrf = browser_flow(fake, public, "login")
    answer = public.post(
        f"/self-service/login?flow={flow['id']}",
        data={"method": "password", "identifier": "a@b.c", "password": "x", "csrf_token": "no"},
        headers={**BROWSER, "Cookie": cookies(None, fake, csrf)},
    )
    assert answer.status_code == 303
    error = stored_error(public, answer.headers["Location"])
    assert (error["id"], error["code"]) == ("security_csrf_violation", 403)


@pytest.mark.parametrize(
    ("cookie", "token", "ajax", "reason", "hint"),
    [
        pytest.param(None, "x", False, "empty or not set", "server-side call", id="no-cookie"),
        pytest.param("a=b", "x", True, "did not include the anti-CSRF", "AJAX", id="missing"),
        pytest.param("csrf", "", False, None, "was not included", id="token-not-sent"),
        pytest.param("csrf", "wrong", True, "do not match", "AJAX", id="mismatch"),
    ],
)
def test_csrf_details_tell_the_cases_apart(
    fake: FakeKratos,
    public: httpx.Client,
    cookie: str | None,
    token: str,
    ajax: bool,
    reason: str | None,
    hint: str,
) -> None:
    """x/nosurfx/nosurf.go CSRFErrorReason: no cookies, cookie missing, token not sent and
    mismatch, each for AJAX (Sec-Fetch-Mode cors) and server calls."""
    flow, csrf = browser_flow(fake, public, "login")
    headers = {**JSON, "Content-Type": "application/x-www-form-urlencoded"}
    if cookie is not None:
        headers["Cookie"] = cookies(None, fake, csrf) if cookie == "csrf" else cookie
    if ajax:
        headers["Sec-Fetch-Mode"] = "cors"
    form = {"method": "password", "identifier": "a@b.c", "password": "x"}
    if token:
        form["csrf_token"] = token
    answer = public.post(f"/self-service/login?flow={flow['id']}", data=form, headers=headers)
    assert answer.status_code == 403
    details = answer.json()["error"]["details"]
    assert hint in details["hint"]
    if reason is None:
        assert "reject_reason" not in details
    else:
        assert reason in details["reject_reason"]


# ----------------------------------------------------- item 5: API flows with browser headers


@pytest.mark.parametrize(
    ("header", "key"),
    [
        pytest.param({"Cookie": "session=1"}, "Cookie", id="cookie"),
        pytest.param({"Origin": "http://127.0.0.1:8000"}, "Origin", id="origin"),
    ],
)
def test_api_flow_with_browser_headers_is_a_400_flow(
    fake: FakeKratos, public: httpx.Client, header: dict[str, str], key: str
) -> None:
    """selfservice/flow/request.go EnsureCSRF: the error goes onto the flow (4000001)."""
    flow = public.get("/self-service/login/api").json()
    answer = public.post(
        f"/self-service/login?flow={flow['id']}",
        json={"method": "password", "identifier": "a@b.c", "password": "x"},
        headers=header,
    )
    assert answer.status_code == 400
    body = answer.json()
    assert_valid("loginFlow", body)
    (message,) = body["ui"]["messages"]
    assert message["id"] == 4000001
    assert f'included the "{key}" key' in message["text"]


def test_api_flow_ignores_cloudflare_cookies(fake: FakeKratos, public: httpx.Client) -> None:
    """selfservice/flow/request.go EnsureCSRF: ``__cf*``, ``_cf*`` and ``cf_*`` cookies
    do not count as a browser's."""
    identity = fake.create_identity("cf@example.com", "long password")
    flow = public.get("/self-service/login/api").json()
    answer = public.post(
        f"/self-service/login?flow={flow['id']}",
        json={"method": "password", "identifier": identity.email, "password": "long password"},
        headers={"Cookie": "__cf_bm=1; _cfuvid=2; cf_clearance=3"},
    )
    assert answer.status_code == 200
    assert answer.json()["session_token"].startswith("ory_st_")


# ------------------------------------------------------------ item 6: settings flow access


@pytest.mark.parametrize("route", ["get", "submit"])
def test_settings_without_a_session_is_401_json_or_302_browser(
    fake: FakeKratos, public: httpx.Client, route: str
) -> None:
    """selfservice/flow/settings/strategy_helper.go OnUnauthenticated, wrapped around
    getSettingsFlow and updateSettingsFlow (handler.go)."""
    session = fake.session("aal1")
    flow = public.get("/self-service/settings/api", headers=session.headers).json()

    def call(headers: dict[str, str]) -> httpx.Response:
        if route == "get":
            return public.get(
                "/self-service/settings/flows", params={"id": flow["id"]}, headers=headers
            )
        return public.post(
            f"/self-service/settings?flow={flow['id']}",
            json={"method": "totp", "totp_code": "000000"},
            headers=headers,
        )

    answer = call(JSON)
    assert answer.status_code == 401
    error = answer.json()["error"]
    assert "id" not in error
    assert error["reason"] == "A valid Ory Session Cookie or Ory Session Token is missing."
    redirected = (
        call(BROWSER)
        if route == "get"
        else public.post(
            f"/self-service/settings?flow={flow['id']}", data={"method": "totp"}, headers=BROWSER
        )
    )
    assert redirected.status_code == 302
    assert redirected.headers["Location"] == f"{fake.ui_url}/login"


@pytest.mark.parametrize("route", ["get", "submit"])
def test_settings_flow_of_another_identity_is_403(
    fake: FakeKratos, public: httpx.Client, route: str
) -> None:
    """selfservice/flow/settings/handler.go getSettingsFlow and flow.go Valid:
    ``security_identity_mismatch``."""
    owner, other = fake.session("aal1"), fake.session("aal1")
    flow = public.get("/self-service/settings/api", headers=owner.headers).json()
    if route == "get":
        answer = public.get(
            "/self-service/settings/flows", params={"id": flow["id"]}, headers=other.headers
        )
    else:
        answer = public.post(
            f"/self-service/settings?flow={flow['id']}",
            json={"method": "totp", "totp_code": "000000"},
            headers=other.headers,
        )
    assert answer.status_code == 403
    assert answer.json()["error"]["id"] == "security_identity_mismatch"


def test_settings_get_has_no_csrf_check(fake: FakeKratos, public: httpx.Client) -> None:
    """selfservice/flow/settings/handler.go getSettingsFlow checks the session, not CSRF."""
    session = fake.session("aal1")
    flow, _ = browser_flow(fake, public, "settings", session)
    answer = public.get(
        "/self-service/settings/flows",
        params={"id": flow["id"]},
        headers={**JSON, "Cookie": session.cookie_header},
    )
    assert answer.status_code == 200
    assert_valid("settingsFlow", answer.json())


def test_settings_submit_checks_the_aal(fake: FakeKratos, public: httpx.Client) -> None:
    """selfservice/flow/settings/handler.go updateSettingsFlow: DoesSessionSatisfy
    (settings required_aal) on submit, after the flow was started."""
    session = fake.session("aal1")
    flow = public.get("/self-service/settings/api", headers=session.headers).json()
    fake.identities[session.identity.id].totp_secret = "JBSWY3DPEHPK3PXP"  # now 2FA
    answer = public.post(
        f"/self-service/settings?flow={flow['id']}",
        json={"method": "password", "password": "a new long password"},
        headers=session.headers,
    )
    assert answer.status_code == 403
    assert answer.json()["error"]["id"] == "session_aal2_required"
    assert session.identity.password == "correct horse battery staple"


# --------------------------------------------------------------------- item 7: admin sessions


def test_admin_sessions_expand_identity_only_when_asked(
    fake: FakeKratos, admin: httpx.Client
) -> None:
    """session/handler.go adminListSessions and getSession: ``expand=identity``."""
    session = fake.session("aal1")
    plain = admin.get("/admin/sessions").json()[0]
    expanded = admin.get("/admin/sessions", params={"expand": "identity"}).json()[0]
    one = admin.get(f"/admin/sessions/{session.id}").json()
    one_expanded = admin.get(f"/admin/sessions/{session.id}", params={"expand": "identity"})
    assert "identity" not in plain and "identity" not in one
    assert expanded["identity"]["id"] == session.identity.id
    assert one_expanded.json()["identity"]["id"] == session.identity.id
    assert_valid("session", plain)
    assert admin.get("/admin/sessions", params={"expand": "nope"}).status_code == 400


def test_admin_list_includes_revoked_sessions_unless_active_is_given(
    fake: FakeKratos, admin: httpx.Client
) -> None:
    """persistence/sql/persister_session.go ListSessions: ``active`` filters, else all."""
    live, gone = fake.session("aal1"), fake.session("aal1")
    fake.revoke(gone)
    every = {s["id"] for s in admin.get("/admin/sessions").json()}
    active = {s["id"] for s in admin.get("/admin/sessions", params={"active": "true"}).json()}
    inactive = {s["id"] for s in admin.get("/admin/sessions", params={"active": "false"}).json()}
    assert (every, active, inactive) == ({live.id, gone.id}, {live.id}, {gone.id})


def test_admin_extend_ignores_active(fake: FakeKratos, admin: httpx.Client) -> None:
    """persistence/sql/persister_session.go ExtendSession: any stored session."""
    session = fake.session("aal1")
    fake.revoke(session)
    answer = admin.patch(f"/admin/sessions/{session.id}/extend")
    assert answer.status_code == 200
    assert answer.json()["active"] is False


def test_admin_identity_sessions_of_an_unknown_identity_is_empty(admin: httpx.Client) -> None:
    """session/handler.go listIdentitySessions: no identity check, so ``200 []``."""
    answer = admin.get("/admin/identities/00000000-0000-0000-0000-000000000000/sessions")
    assert (answer.status_code, answer.json()) == (200, [])


def test_admin_delete_identity_sessions_deletes_rows_and_404s_on_none(
    fake: FakeKratos, admin: httpx.Client
) -> None:
    """persistence/sql/persister_session.go DeleteSessionsByIdentity: rows are deleted;
    no row is a 404."""
    session = fake.session("aal1")
    path = f"/admin/identities/{session.identity.id}/sessions"
    assert admin.delete(path).status_code == 204
    assert admin.get(f"/admin/sessions/{session.id}").status_code == 404
    assert admin.get(path).json() == []
    assert admin.delete(path).status_code == 404


# ------------------------------------------------------------------------ item 8: backup codes


def test_backup_codes_are_kept_with_used_at_and_reuse_is_4000012(
    fake: FakeKratos, public: httpx.Client, admin: httpx.Client
) -> None:
    """identity/credentials_lookup.go (``recovery_codes``, ``used_at``) and
    selfservice/strategy/lookup/login.go (4000012 for a used code)."""
    identity = fake.create_identity(lookup_secrets=["aaaa1111", "bbbb2222"])

    def submit(code: str) -> httpx.Response:
        session = fake.session("aal1", identity=identity)
        flow = public.get(
            "/self-service/login/api", params={"aal": "aal2"}, headers=session.headers
        ).json()
        return public.post(
            f"/self-service/login?flow={flow['id']}",
            json={"method": "lookup_secret", "lookup_secret": code},
            headers=session.headers,
        )

    assert submit("aaaa1111").status_code == 200
    again = submit("aaaa1111")
    assert again.status_code == 400
    assert again.json()["ui"]["messages"] == [
        {"id": 4000012, "text": "This backup recovery code has already been used.", "type": "error"}
    ]
    full = admin.get(
        f"/admin/identities/{identity.id}", params={"include_credential": "lookup_secret"}
    ).json()
    codes = {
        c["code"]: c["used_at"]
        for c in full["credentials"]["lookup_secret"]["config"]["recovery_codes"]
    }
    assert codes["bbbb2222"] is None
    assert isinstance(codes["aaaa1111"], str)


# ----------------------------------------------------------------------- item 9: GET /sessions


def test_my_sessions_without_a_session_is_401_without_an_id(public: httpx.Client) -> None:
    """session/handler.go listMySessions: ``No valid session cookie found.``."""
    answer = public.get("/sessions", headers=JSON)
    assert answer.status_code == 401
    error = answer.json()["error"]
    assert "id" not in error
    assert error["reason"] == "No valid session cookie found."


def test_my_sessions_checks_whoamis_aal(fake: FakeKratos, public: httpx.Client) -> None:
    """session/handler.go listMySessions: DoesSessionSatisfy(session.whoami.required_aal)."""
    session = fake.session("aal1", totp=True)  # a 2FA identity at aal1
    answer = public.get("/sessions", headers=session.headers)
    assert answer.status_code == 403
    assert answer.json()["error"]["id"] == "session_aal2_required"


def test_my_sessions_are_paged(fake: FakeKratos, public: httpx.Client) -> None:
    """session/handler.go listMySessions: x.PaginationHeader (X-Total-Count, Link)."""
    me = fake.session("aal1")
    for _ in range(3):
        fake.session("aal1", identity=me.identity)
    first = public.get("/sessions", params={"page_size": 2}, headers=me.headers)
    assert first.headers["X-Total-Count"] == "3"
    assert len(first.json()) == 2
    assert 'rel="next"' in first.headers["Link"]
    second = public.get("/sessions", params={"page_size": 2, "page_token": 2}, headers=me.headers)
    assert len(second.json()) == 1
    assert 'rel="next"' not in second.headers["Link"]
    assert {s["id"] for s in first.json() + second.json()} & {me.id} == set()


# ------------------------------------------------------------------------ item 10: logout


def test_logout_without_a_session_is_session_inactive(
    fake: FakeKratos, public: httpx.Client
) -> None:
    """selfservice/flow/logout/handler.go updateLogoutFlow: FetchFromRequest's error,
    session/manager.go NewErrNoActiveSessionFound (``session_inactive``)."""
    answer = public.get("/self-service/logout", params={"token": "t"}, headers=JSON)
    assert answer.status_code == 401
    assert answer.json()["error"]["id"] == "session_inactive"
    start = public.get("/self-service/logout/browser", headers=JSON)
    assert start.json()["error"]["id"] == "session_inactive"


def test_logout_errors_send_a_browser_to_the_error_ui(public: httpx.Client) -> None:
    """selfservice/flow/logout/handler.go: errors go through errorx Forward."""
    answer = public.get("/self-service/logout/browser", headers=BROWSER)
    assert answer.status_code == 303
    assert stored_error(public, answer.headers["Location"])["id"] == "session_inactive"


def test_native_logout_errors(public: httpx.Client) -> None:
    """selfservice/flow/logout/handler.go performNativeLogout: the token's reason, and a
    body that is not JSON is a 400."""
    bad = public.request("DELETE", "/self-service/logout/api", json={"session_token": "x"})
    assert bad.status_code == 403
    assert bad.json()["error"]["reason"] == (
        "The provided Ory Session Token could not be found, is invalid, or otherwise malformed."
    )
    broken = public.request(
        "DELETE",
        "/self-service/logout/api",
        content=b"{not json",
        headers={"Content-Type": "application/json"},
    )
    assert broken.status_code == 400


def test_logout_sets_a_new_csrf_cookie(fake: FakeKratos, public: httpx.Client) -> None:
    """selfservice/flow/logout/handler.go completeLogout: RegenerateToken."""
    session = fake.session("aal1")
    headers = {"Cookie": session.cookie_header}
    token = public.get("/self-service/logout/browser", headers=headers).json()["logout_token"]
    answer = public.get("/self-service/logout", params={"token": token}, headers=headers)
    assert answer.status_code == 303
    assert csrf_of(fake, answer)


# ------------------------------------------------------------------ item 11: expired flows


@pytest.mark.parametrize(("kind", "message"), [("login", 4010001), ("settings", 4050001)])
def test_expired_flow_replacement_says_why(
    fake: FakeKratos, public: httpx.Client, kind: str, message: int
) -> None:
    """selfservice/flow/login/error.go and settings/error.go: the replacement flow
    carries NewErrorValidation{Login,Settings}FlowExpired."""
    session = fake.session("aal1")
    if kind == "login":
        flow = public.get("/self-service/login/api").json()
        body: dict[str, Any] = {"method": "password", "identifier": "a@b.c", "password": "x"}
        headers: dict[str, str] = {}
    else:
        flow = public.get("/self-service/settings/api", headers=session.headers).json()
        body = {"method": "totp", "totp_code": "000000"}
        headers = session.headers
    fake.clock.advance(2 * 3600)
    fake.extend(session, 3 * 3600)
    answer = public.post(f"/self-service/{kind}?flow={flow['id']}", json=body, headers=headers)
    assert answer.status_code == 410
    replacement = answer.json()["use_flow_id"]
    fetched = public.get(f"/self-service/{kind}/flows", params={"id": replacement}, headers=headers)
    assert messages(fetched.json()) == [message]


# --------------------------------------------------------------- item 12: malformed submits


@pytest.mark.parametrize(
    ("content", "content_type", "reason"),
    [
        pytest.param(b"{oops", "application/json", "Unable to decode form as JSON.", id="bad-json"),
        pytest.param(
            b"method=password",
            "text/plain",
            "Unable to determine decoder for content type: text/plain",
            id="text-plain",
        ),
    ],
)
def test_malformed_submit_is_a_400_flow_with_the_decoders_message(
    public: httpx.Client, content: bytes, content_type: str, reason: str
) -> None:
    """ory/x decoderx (selfservice/flow/request.go MethodEnabledAndAllowedFromRequest):
    the decoder's error goes onto the flow as 4000001."""
    flow = public.get("/self-service/login/api").json()
    answer = public.post(
        f"/self-service/login?flow={flow['id']}",
        content=content,
        headers={"Content-Type": content_type},
    )
    assert answer.status_code == 400
    assert answer.json()["ui"]["messages"] == [{"id": 4000001, "text": reason, "type": "error"}]


def test_bodies_over_5_mb_are_refused(fake: FakeKratos, public: httpx.Client) -> None:
    """cmd/daemon/serve.go: http.MaxBytesHandler(handler, 5 MB) around both ports."""
    identity = fake.create_identity("big@example.com", "long password")
    flow = public.get("/self-service/login/api").json()
    body = {
        "method": "password",
        "identifier": identity.email,
        "password": "long password",
        "padding": "x" * (6 * 1024 * 1024),
    }
    answer = public.post(f"/self-service/login?flow={flow['id']}", json=body)
    assert answer.status_code == 400
    assert "session_token" not in answer.json()


# --------------------------------------------------------------------- item 13: registration


def test_short_password_is_4000032(public: httpx.Client) -> None:
    """selfservice/strategy/password/validator.go: NewErrorValidationPasswordMinLength."""
    flow = public.get("/self-service/registration/api").json()
    answer = public.post(
        f"/self-service/registration?flow={flow['id']}",
        json={"method": "password", "traits": {"email": "s@example.com"}, "password": "short"},
    )
    node = next(n for n in answer.json()["ui"]["nodes"] if n["attributes"]["name"] == "password")
    assert node["messages"][0]["id"] == 4000032
    assert node["messages"][0]["text"] == (
        "The password must be at least 8 characters long, but got 5."
    )


def test_api_registration_continues_with_the_token(public: httpx.Client) -> None:
    """selfservice/flow/registration hook: ``continue_with`` ``set_ory_session_token``."""
    flow = public.get("/self-service/registration/api").json()
    answer = public.post(
        f"/self-service/registration?flow={flow['id']}",
        json={"method": "password", "traits": {"email": "n@example.com"}, "password": "long pass"},
    )
    body = answer.json()
    assert body["continue_with"] == [
        {"action": "set_ory_session_token", "ory_session_token": body["session_token"]}
    ]
    assert_valid("successfulNativeRegistration", body)


def test_registration_submit_while_logged_in_is_refused(
    fake: FakeKratos, public: httpx.Client
) -> None:
    """selfservice/flow/registration/handler.go updateRegistrationFlow: a session is
    refused before any strategy (API: 400 ``session_already_available``)."""
    flow = public.get("/self-service/registration/api").json()
    session = fake.session("aal1")
    answer = public.post(
        f"/self-service/registration?flow={flow['id']}",
        json={"method": "password", "traits": {"email": "r@example.com"}, "password": "long pass"},
        headers=session.headers,
    )
    assert answer.status_code == 400
    assert answer.json()["error"]["id"] == "session_already_available"
    assert not any(i.email == "r@example.com" for i in fake.identities.values())


# ------------------------------------------------------------------- item 14: WebAuthn nodes


def test_webauthn_nodes_in_browser_flows_only(fake: FakeKratos, public: httpx.Client) -> None:
    """selfservice/strategy/webauthn/login.go (browser flows only) and
    x/webauthnx/nodes.go (script, trigger with onclickTrigger, hidden input)."""
    identity = fake.create_identity(security_keys=1)
    session = fake.session("aal1", identity=identity)
    api = public.get(
        "/self-service/login/api", params={"aal": "aal2"}, headers=session.headers
    ).json()
    assert not [n for n in api["ui"]["nodes"] if n["group"] == "webauthn"]
    browser = public.get(
        "/self-service/login/browser",
        params={"aal": "aal2"},
        headers={**JSON, "Cookie": session.cookie_header},
    ).json()
    assert_valid("loginFlow", browser)
    nodes = [n for n in browser["ui"]["nodes"] if n["group"] == "webauthn"]
    assert [n["type"] for n in nodes] == ["script", "input", "input"]
    assert nodes[0]["attributes"]["id"] == "webauthn_script"
    trigger = nodes[1]
    assert trigger["attributes"]["onclickTrigger"] == "oryWebAuthnLogin"
    assert trigger["meta"]["label"] == {
        "id": 1010008,
        "text": "Sign in with hardware key",
        "type": "info",
    }
    assert nodes[2]["attributes"]["name"] == "webauthn_login"


# --------------------------------------------------------------------------- item 15: ports


def test_admin_port_serves_health_and_unprefixed_routes(
    fake: FakeKratos, admin: httpx.Client
) -> None:
    """oryx/httprouterx/router.go AddAdminPrefixIfNotPresentNegroni and the health routes."""
    identity = fake.create_identity("h@example.com")
    assert admin.get("/health/alive").json() == {"status": "ok"}
    assert admin.get("/health/ready").status_code == 200
    assert admin.get(f"/identities/{identity.id}").json()["id"] == identity.id


def test_public_port_redirects_admin_routes(fake: FakeKratos, public: httpx.Client) -> None:
    """x/redir/port_redirect.go RedirectToAdminRoute: a 307 to the admin URL."""
    answer = public.get("/admin/identities", params={"page_size": "1"})
    assert answer.status_code == 307
    assert answer.headers["Location"] == f"{fake.admin_url}/admin/identities?page_size=1"
    assert public.get("/identities").headers["Location"] == f"{fake.admin_url}/admin/identities"


def test_admin_app_passes_a_docker_health_check() -> None:
    """The admin port answers ``/health/ready`` and ``/health/alive`` on a real port, as a
    Docker ``curl -f http://kratos:4434/health/ready`` health check asks (the same check
    against ``kratos-aal fake`` is in tests/test_cli.py)."""
    fake = FakeKratos()
    with serve(fake.admin_app) as url:
        for path in ("/health/ready", "/health/alive"):
            answer = httpx.get(f"{url}{path}", timeout=10)
            answer.raise_for_status()  # what curl -f checks
            assert answer.json() == {"status": "ok"}


# -------------------------------------------------------------------------- item 16: smaller


def test_delete_whoami_is_whoami(fake: FakeKratos, public: httpx.Client) -> None:
    """session/handler.go deleteMySession: ``/sessions/whoami`` is answered by whoami."""
    session = fake.session("aal1")
    answer = public.delete("/sessions/whoami", headers=session.headers)
    assert answer.status_code == 200
    assert answer.json()["id"] == session.id


def test_admin_create_identity_answers_201_with_location_and_credentials(
    fake: FakeKratos, admin: httpx.Client
) -> None:
    """identity/handler.go create: WriteCreated (Location, no /admin prefix),
    WithCredentialsNoConfigAndAdminMetadataInJSON, and a strict decoder."""
    body = {
        "schema_id": "default",
        "traits": {"email": "c@example.com"},
        "credentials": {"password": {"config": {"password": "long password"}}},
    }
    answer = admin.post("/admin/identities", json=body)
    assert answer.status_code == 201
    created = answer.json()
    assert answer.headers["Location"] == f"{fake.admin_url}/identities/{created['id']}"
    assert created["credentials"]["password"]["identifiers"] == ["c@example.com"]
    assert "config" not in created["credentials"]["password"]
    unknown = admin.post("/admin/identities", json={**body, "nope": 1})
    assert unknown.status_code == 400


def test_not_found_bodies(fake: FakeKratos, public: httpx.Client) -> None:
    """ory/x sqlcon ErrNoRows ("Unable to locate the resource") for an unknown flow; Go's
    http.NotFound (text/plain) for an unknown route."""
    missing = public.get("/self-service/login/flows", params={"id": "nope"})
    assert missing.status_code == 404
    assert missing.json()["error"]["message"] == "Unable to locate the resource"
    route = public.get("/no/such/route")
    assert route.status_code == 404
    assert route.headers["Content-Type"].startswith("text/plain")
    assert route.text == "404 page not found\n"


def test_second_factor_inputs_have_no_autocomplete_and_empty_values(
    fake: FakeKratos, public: httpx.Client
) -> None:
    """BEHAVIOR.md, opening: TOTP and backup-code inputs carry no ``autocomplete`` and
    login nodes have ``value: ""``."""
    identity = fake.create_identity(totp=True, lookup_secrets=True)
    session = fake.session("aal1", identity=identity)
    flow = public.get(
        "/self-service/login/api", params={"aal": "aal2"}, headers=session.headers
    ).json()
    inputs = {
        n["attributes"]["name"]: n["attributes"]
        for n in flow["ui"]["nodes"]
        if n["attributes"].get("type") == "text"
    }
    assert set(inputs) == {"totp_code", "lookup_secret"}
    for attributes in inputs.values():
        assert "autocomplete" not in attributes
        assert attributes["value"] == ""
    password = next(
        n
        for n in public.get("/self-service/login/api").json()["ui"]["nodes"]
        if n["attributes"]["name"] == "password"
    )
    assert password["attributes"]["value"] == ""


def test_identity_json_has_state_changed_at_and_omits_empty_addresses(
    fake: FakeKratos, admin: httpx.Client
) -> None:
    """identity/identity.go: ``state_changed_at``; the address lists are omitempty."""
    identity = fake.create_identity("s@example.com")
    body = admin.get(f"/admin/identities/{identity.id}").json()
    assert body["state_changed_at"]
    assert "verifiable_addresses" not in body and "recovery_addresses" not in body
    assert_valid("identity", body)


def test_default_settings_flow_has_profile_and_password(
    fake: FakeKratos, public: httpx.Client
) -> None:
    """selfservice/strategy/profile and password settings.go: on by default, so their
    groups are in every settings flow; a password change works."""
    session = fake.session("aal1")
    flow = public.get("/self-service/settings/api", headers=session.headers).json()
    groups = {n["group"] for n in flow["ui"]["nodes"]}
    assert {"profile", "password", "totp"} <= groups
    answer = public.post(
        f"/self-service/settings?flow={flow['id']}",
        json={"method": "password", "password": "a new long password"},
        headers=session.headers,
    )
    assert answer.status_code == 200
    assert session.identity.password == "a new long password"


def test_session_cookie_has_expires_and_max_age(fake: FakeKratos, public: httpx.Client) -> None:
    """session/manager_http.go IssueCookie: a persistent cookie with Expires and Max-Age."""
    fake.create_identity("e@example.com", "long password")
    flow, csrf = browser_flow(fake, public, "login")
    answer = public.post(
        f"/self-service/login?flow={flow['id']}",
        json={
            "method": "password",
            "identifier": "e@example.com",
            "password": "long password",
            "csrf_token": csrf,
        },
        headers={**JSON, "Cookie": cookies(None, fake, csrf)},
    )
    cookie = next(
        c for c in answer.headers.get_list("set-cookie") if c.startswith(fake.cookie_name)
    )
    assert re.search(r"; Expires=\w{3}, \d\d \w{3} \d{4} \d\d:\d\d:\d\d GMT;", cookie)
    assert "Max-Age=86400" in cookie


def test_totp_account_name_is_the_identity_id(fake: FakeKratos, public: httpx.Client) -> None:
    """selfservice/strategy/totp/generator.go NewKey: the account name is the identity id
    (the QR code encodes ``otpauth://totp/<issuer>:<identity id>?...``)."""
    segno = pytest.importorskip("segno")
    session = fake.session("aal1")
    flow = public.get("/self-service/settings/api", headers=session.headers).json()
    secret = fake.pending_totp_secret(flow["id"]) or ""
    node = next(n for n in flow["ui"]["nodes"] if n["attributes"].get("id") == "totp_qr")
    uri = pyotp.TOTP(secret).provisioning_uri(name=session.identity.id, issuer_name="127.0.0.1")
    assert node["attributes"]["src"] == segno.make(uri, error="m").png_data_uri(scale=4)


def test_browser_aal2_submit_without_a_session_goes_to_the_error_ui(
    fake: FakeKratos, public: httpx.Client
) -> None:
    """selfservice/flow/login/handler.go updateLoginFlow: ErrSessionRequiredForHigherAAL
    through WriteFlowError, which forwards a browser to the error UI."""
    session = fake.session("aal1")
    flow, csrf = browser_flow(fake, public, "login", session, aal="aal2")
    fake.revoke(session)
    answer = public.post(
        f"/self-service/login?flow={flow['id']}",
        data={"method": "totp", "totp_code": "000000", "csrf_token": csrf},
        headers={**BROWSER, "Cookie": cookies(None, fake, csrf)},
    )
    assert answer.status_code == 303
    assert stored_error(public, answer.headers["Location"])["id"] == "session_aal1_required"


# ------------------------------------------------------------------ item 17: no unreleased


def test_no_option_sends_autocomplete_username() -> None:
    """BEHAVIOR.md, opening: neither v26.2.0 nor the reference commit sends
    ``autocomplete: "username"``; the option that produced it is gone."""
    with pytest.raises(TypeError):
        FakeKratos(unreleased=True)  # type: ignore[call-arg]
    fake = FakeKratos()
    with httpx.Client(transport=fake.transport(), base_url=fake.public_url) as client:
        flow = client.get("/self-service/login/api").json()
    assert all(n["attributes"].get("autocomplete") != "username" for n in flow["ui"]["nodes"])

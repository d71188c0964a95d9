"""FakeKratos answers as Kratos does, one pinned behaviour per test (issue 11).

Each docstring names where Kratos defines the behaviour: a section of
``BEHAVIOR.md`` (written from Kratos commit b86338da) or a file of Kratos's source.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from kratos_aal.testing import FakeClock, FakeKratos

from ..openapi import assert_valid

JSON = {"Accept": "application/json"}


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


def whoami_status(fake: FakeKratos, token: str) -> int:
    with httpx.Client(transport=fake.transport(), base_url=fake.public_url) as client:
        return client.get("/sessions/whoami", headers={"X-Session-Token": token}).status_code


# ------------------------------------------------------------------------ item 1: logout


def test_logout_token_alone_is_401_and_keeps_the_session(
    fake: FakeKratos, public: httpx.Client
) -> None:
    """selfservice/flow/logout/handler.go updateLogoutFlow: FetchFromRequest first.

    Without the session's cookie, Kratos answers 401 and the session stays active.
    """
    session = fake.session("aal1")
    flow = public.get("/self-service/logout/browser", headers={"Cookie": session.cookie_header})
    token = flow.json()["logout_token"]
    answer = public.get("/self-service/logout", params={"token": token}, headers=JSON)
    assert answer.status_code == 401
    assert whoami_status(fake, session.token) == 200


def test_logout_with_the_cookie_revokes(fake: FakeKratos, public: httpx.Client) -> None:
    """selfservice/flow/logout/handler.go updateLogoutFlow: 204 for JSON, session gone."""
    session = fake.session("aal1")
    headers = {"Cookie": session.cookie_header}
    token = public.get("/self-service/logout/browser", headers=headers).json()["logout_token"]
    answer = public.get(
        "/self-service/logout", params={"token": token}, headers={**headers, **JSON}
    )
    assert answer.status_code == 204
    assert whoami_status(fake, session.token) == 401


def test_logout_token_of_another_session_is_403(fake: FakeKratos, public: httpx.Client) -> None:
    """selfservice/flow/logout/handler.go: a token that is not the session's is 403."""
    mine, other = fake.session("aal1"), fake.session("aal1")
    token = public.get(
        "/self-service/logout/browser", headers={"Cookie": other.cookie_header}
    ).json()["logout_token"]
    answer = public.get(
        "/self-service/logout",
        params={"token": token},
        headers={"Cookie": mine.cookie_header, **JSON},
    )
    assert answer.status_code == 403
    assert (whoami_status(fake, mine.token), whoami_status(fake, other.token)) == (200, 200)


def test_logout_without_token_is_400(fake: FakeKratos, public: httpx.Client) -> None:
    """selfservice/flow/logout/handler.go: "Please include a token in the URL query." (400)."""
    session = fake.session("aal1")
    answer = public.get("/self-service/logout", headers={"Cookie": session.cookie_header, **JSON})
    assert answer.status_code == 400
    assert answer.json()["error"]["reason"] == "Please include a token in the URL query."
    assert whoami_status(fake, session.token) == 200


def test_logout_token_is_stable_per_session(fake: FakeKratos, public: httpx.Client) -> None:
    """session/session.go: LogoutToken is stored with the session, so every call agrees."""
    one, two = fake.session("aal1"), fake.session("aal1")

    def token(cookie: str) -> str:
        flow = public.get("/self-service/logout/browser", headers={"Cookie": cookie})
        return str(flow.json()["logout_token"])

    assert token(one.cookie_header) == token(one.cookie_header)
    assert token(one.cookie_header) != token(two.cookie_header)


# ------------------------------------------------------------------- item 2: admin port


def test_admin_api_answers_only_on_the_admin_url(
    fake: FakeKratos, public: httpx.Client, admin: httpx.Client
) -> None:
    """cmd/daemon/serve.go: the admin router is served on serve.admin only (port 4434).

    The public port answers the admin routes with a 307 there
    (x/redir/port_redirect.go); the admin port's /admin/sessions/whoami sends a 307 back
    to the public port (session/handler.go getSession).
    """
    identity = fake.create_identity("a@example.com")
    assert fake.admin_url == "http://127.0.0.1:4434"
    moved = public.get(f"/admin/identities/{identity.id}")
    assert moved.status_code == 307
    assert moved.headers["Location"] == f"{fake.admin_url}/admin/identities/{identity.id}"
    assert public.get("/admin/identities").status_code == 307
    assert admin.get(f"/admin/identities/{identity.id}").status_code == 200
    back = admin.get("/sessions/whoami")
    assert back.status_code == 307
    assert back.headers["Location"] == f"{fake.public_url}/sessions/whoami"


def test_admin_url_never_equals_the_public_url() -> None:
    """SPEC §6: the admin API has its own base URL, even when the public port is 4434."""
    assert FakeKratos(public_url="http://k:4434").admin_url == "http://k:4435"
    assert FakeKratos(admin_url="http://k:9/").admin_url == "http://k:9"


# -------------------------------------------------------------- item 5: stored values


def test_whoami_repeats_stored_timestamps_and_device_id(
    fake: FakeKratos, public: httpx.Client
) -> None:
    """BEHAVIOR.md §2: times and devices are stored, so identical whoami calls agree."""
    session = fake.session("aal1")
    first, second = (
        public.get("/sessions/whoami", headers=session.headers).json() for _ in range(2)
    )
    keys = ("expires_at", "authenticated_at", "issued_at", "devices")
    assert [first[k] for k in keys] == [second[k] for k in keys]


# --------------------------------------------------------- item 12: admin identity API


def test_admin_creates_lists_and_deletes_identities(
    fake: FakeKratos, public: httpx.Client, admin: httpx.Client
) -> None:
    """identity/handler.go create (201), list (200), delete (204, sessions go too)."""
    body = {
        "schema_id": "default",
        "traits": {"email": "new@example.com"},
        "credentials": {"password": {"config": {"password": "a long passphrase"}}},
    }
    created = admin.post("/admin/identities", json=body)
    assert created.status_code == 201
    assert_valid("identity", created.json())
    identity_id = created.json()["id"]
    assert admin.post("/admin/identities", json=body).status_code == 409
    listed = admin.get("/admin/identities").json()
    assert [i["id"] for i in listed] == [identity_id]
    session = fake.session("aal1", identity=fake.identities[identity_id])
    assert admin.delete(f"/admin/identities/{identity_id}").status_code == 204
    assert admin.get(f"/admin/identities/{identity_id}").status_code == 404
    assert admin.delete(f"/admin/identities/{identity_id}").status_code == 404
    assert whoami_status(fake, session.token) == 401


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({}, id="no-traits"),
        pytest.param({"traits": {"email": "not-an-email"}}, id="bad-email"),
        pytest.param({"traits": "x"}, id="traits-not-object"),
    ],
)
def test_admin_create_rejects_bad_traits(admin: httpx.Client, body: dict[str, Any]) -> None:
    """identity/handler.go create: traits failing the identity schema are a 400."""
    assert admin.post("/admin/identities", json=body).status_code == 400


def test_admin_create_rejects_a_body_that_is_not_json(admin: httpx.Client) -> None:
    """identity/handler.go create: an undecodable body is a 400."""
    assert admin.post("/admin/identities", content=b"{").status_code == 400


def test_admin_sessions_list_extend_revoke(fake: FakeKratos, admin: httpx.Client) -> None:
    """session/handler.go adminListSessions, adminExtendSession, adminDeleteSession."""
    session = fake.session("aal1", expires_in=60)
    identity_id = session.identity.id
    listed = admin.get("/admin/sessions").json()
    assert [s["id"] for s in listed] == [session.id]
    assert_valid("session", listed[0])
    mine = admin.get(f"/admin/identities/{identity_id}/sessions").json()
    assert [s["id"] for s in mine] == [session.id]
    before = admin.get(f"/admin/sessions/{session.id}").json()["expires_at"]
    extended = admin.patch(f"/admin/sessions/{session.id}/extend")
    assert extended.status_code == 200
    assert extended.json()["expires_at"] > before
    assert admin.delete(f"/admin/sessions/{session.id}").status_code == 204
    assert whoami_status(fake, session.token) == 401
    # Revoked, not deleted: still listed, and extending ignores active (issue 24 item 7).
    assert admin.patch(f"/admin/sessions/{session.id}/extend").status_code == 200
    assert [s["active"] for s in admin.get("/admin/sessions").json()] == [False]
    assert admin.get("/admin/sessions", params={"active": "true"}).json() == []


def test_admin_revokes_every_session_of_an_identity(fake: FakeKratos, admin: httpx.Client) -> None:
    """identity/handler.go deleteIdentitySessions: 204, every session inactive."""
    one = fake.session("aal1")
    two = fake.session("aal1", identity=one.identity)
    answer = admin.delete(f"/admin/identities/{one.identity.id}/sessions")
    assert answer.status_code == 204
    assert (whoami_status(fake, one.token), whoami_status(fake, two.token)) == (401, 401)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        pytest.param("GET", "/admin/sessions/nope", id="get-session"),
        pytest.param("DELETE", "/admin/sessions/nope", id="revoke-session"),
        pytest.param("DELETE", "/admin/identities/nope/sessions", id="revoke-identity-sessions"),
        pytest.param("PUT", "/admin/identities/nope", id="unknown-method"),
        pytest.param("GET", "/admin/courier/messages", id="unknown-path"),
    ],
)
def test_admin_unknown_is_404(admin: httpx.Client, method: str, path: str) -> None:
    """Kratos answers 404 for an unknown id or route on the admin router."""
    assert admin.request(method, path).status_code == 404


def test_admin_token_guards_every_admin_call() -> None:
    """SPEC §3: with an admin token set, every admin call without it is 401."""
    fake = FakeKratos(admin_token="secret")
    with httpx.Client(transport=fake.transport(), base_url=fake.admin_url) as admin:
        assert admin.get("/admin/sessions").status_code == 401
        assert admin.post("/admin/identities", json={}).status_code == 401
        good = admin.get("/admin/sessions", headers={"Authorization": "Bearer secret"})
        assert good.status_code == 200


# ----------------------------------------------------- item 6: API flows refuse browsers


@pytest.mark.parametrize(
    "header",
    [
        pytest.param({"Cookie": "anything=1"}, id="cookie"),
        pytest.param({"Origin": "http://127.0.0.1:8000"}, id="origin"),
    ],
)
@pytest.mark.parametrize("kind", ["login", "registration"])
def test_api_flow_submit_with_browser_headers_is_400(
    fake: FakeKratos, public: httpx.Client, header: dict[str, str], kind: str
) -> None:
    """selfservice/flow/error.go ErrCookieHeaderNeedsBrowserFlow / ErrOriginHeaderNeedsBrowserFlow.

    BEHAVIOR.md §3: "API flows must send no cookies and no Origin" (flow.EnsureCSRF).
    """
    fake.create_identity("a@example.com")
    flow = public.get(f"/self-service/{kind}/api").json()
    body = {"method": "password", "identifier": "a@example.com", "password": "x"}
    answer = public.post(f"/self-service/{kind}?flow={flow['id']}", json=body, headers=header)
    assert answer.status_code == 400
    (message,) = answer.json()["ui"]["messages"]
    assert message["id"] == 4000001
    assert f'included the "{next(iter(header))}" key' in message["text"]


def test_api_flow_submit_without_browser_headers_is_judged(
    fake: FakeKratos, public: httpx.Client
) -> None:
    """The other side of the boundary: a clean API submit reaches the password check."""
    fake.create_identity("a@example.com")
    flow = public.get("/self-service/login/api").json()
    body = {"method": "password", "identifier": "a@example.com", "password": "wrong"}
    answer = public.post(f"/self-service/login?flow={flow['id']}", json=body)
    assert answer.status_code == 400
    assert answer.json()["ui"]["messages"][0]["id"] == 4000006


# ---------------------------------------------- item 7: Bearer after an unreadable cookie


def test_bearer_is_read_after_a_cookie_that_does_not_decode(
    fake: FakeKratos, public: httpx.Client
) -> None:
    """BEHAVIOR.md §1 "Where the token is read from": the cookie if it decodes, then Bearer."""
    session = fake.session("aal1")
    headers = {
        "Cookie": f"{fake.cookie_name}=not-a-securecookie",
        "Authorization": f"Bearer {session.token}",
    }
    answer = public.get("/sessions/whoami", headers=headers)
    assert answer.status_code == 200
    assert "Set-Cookie" not in answer.headers
    alone = public.get("/sessions/whoami", headers={"Cookie": headers["Cookie"]})
    assert alone.status_code == 401


def test_a_cookie_that_decodes_wins_over_bearer(fake: FakeKratos, public: httpx.Client) -> None:
    """BEHAVIOR.md §1: first match wins; a good cookie is used even beside a Bearer token."""
    by_cookie, by_bearer = fake.session("aal1"), fake.session("aal1")
    headers = {"Cookie": by_cookie.cookie_header, "Authorization": f"Bearer {by_bearer.token}"}
    answer = public.get("/sessions/whoami", headers=headers)
    assert answer.json()["id"] == by_cookie.id


# ------------------------------------------------------------- item 4: cacheable sessions


def test_no_session_cache_header_by_default(fake: FakeKratos, public: httpx.Client) -> None:
    """BEHAVIOR.md §1 (session/handler.go whoami): cacheable_sessions is off by default.

    Off, Kratos sends ``Ory-Session-Cache-For`` on no answer, not even the 401 to a
    request without credentials.
    """
    session = fake.session("aal1")
    assert "Ory-Session-Cache-For" not in public.get("/sessions/whoami").headers
    ok = public.get("/sessions/whoami", headers=session.headers)
    assert ok.status_code == 200 and "Ory-Session-Cache-For" not in ok.headers


def test_session_cache_header_when_on() -> None:
    """BEHAVIOR.md §1: on, 200 carries the max age and a bare 401 carries 60."""
    fake = FakeKratos(cacheable_sessions=120)
    session = fake.session("aal1")
    with httpx.Client(transport=fake.transport(), base_url=fake.public_url) as public:
        assert public.get("/sessions/whoami").headers["Ory-Session-Cache-For"] == "60"
        ok = public.get("/sessions/whoami", headers=session.headers)
        assert ok.headers["Ory-Session-Cache-For"] == "120"
        bad = public.get("/sessions/whoami", headers={"X-Session-Token": "ory_st_nope"})
        assert bad.status_code == 401 and "Ory-Session-Cache-For" not in bad.headers


# ------------------------------------------------------------------ item 8: the smaller


@pytest.mark.parametrize("flow_type", ["api", "browser"])
def test_fetching_an_expired_flow_is_410(
    fake: FakeKratos, public: httpx.Client, flow_type: str
) -> None:
    """login/handler.go getLoginFlow: an expired flow is 410 self_service_flow_expired."""
    flow = public.get(f"/self-service/login/{flow_type}", headers=JSON).json()
    fake.clock.advance(fake.login_lifespan - 1)
    fresh = public.get("/self-service/login/flows", params={"id": flow["id"]})
    assert fresh.status_code == 200
    fake.clock.advance(1)
    answer = public.get("/self-service/login/flows", params={"id": flow["id"]})
    assert answer.status_code == 410
    error = answer.json()["error"]
    assert error["id"] == "self_service_flow_expired"
    key = "redirect_to" if flow_type == "browser" else "api"
    assert error["details"][key].startswith(f"{fake.public_url}/self-service/login/{flow_type}")


def test_settings_flow_starts_in_show_form(fake: FakeKratos, public: httpx.Client) -> None:
    """settings/flow.go NewFlow: state show_form (login flows: choose_method)."""
    session = fake.session("aal1")
    settings = public.get("/self-service/settings/api", headers=session.headers).json()
    assert settings["state"] == "show_form"
    assert public.get("/self-service/login/api").json()["state"] == "choose_method"


def test_password_on_an_aal2_flow_is_4010002(fake: FakeKratos, public: httpx.Client) -> None:
    """login/handler.go updateLoginFlow: no aal2 strategy takes a password (4010002)."""
    session = fake.session("aal1", totp=True)
    flow = public.get(
        "/self-service/login/api", params={"aal": "aal2"}, headers=session.headers
    ).json()
    answer = public.post(
        f"/self-service/login?flow={flow['id']}",
        json={"method": "password", "identifier": session.identity.email, "password": "x"},
        headers=session.headers,
    )
    assert answer.status_code == 400
    assert answer.json()["ui"]["messages"][0]["id"] == 4010002


def test_csrf_cookie_is_named_by_the_whole_sha256(fake: FakeKratos, public: httpx.Client) -> None:
    """BEHAVIOR.md §3 (x/nosurfx): csrf_token_<64 hex>, Max-Age 31536000."""
    start = public.get("/self-service/login/browser")
    cookie = start.headers["Set-Cookie"]
    name = cookie.split("=", 1)[0]
    assert re.fullmatch(r"csrf_token_[0-9a-f]{64}", name)
    assert "Max-Age=31536000" in cookie


def test_unknown_tokenizer_template_is_400(fake: FakeKratos, public: httpx.Client) -> None:
    """BEHAVIOR.md §1 tokenize_as: unknown template → 400 naming it."""
    session = fake.session("aal1")
    answer = public.get("/sessions/whoami", params={"tokenize_as": "nope"}, headers=session.headers)
    assert answer.status_code == 400
    assert answer.json()["error"]["reason"] == 'Unable to find tokenizer template "nope".'
    empty = public.get("/sessions/whoami", params={"tokenize_as": ""}, headers=session.headers)
    assert empty.status_code == 200


@pytest.mark.parametrize(("method", "has_body"), [("GET", True), ("POST", False)])
def test_303_has_go_redirect_body_on_get(
    fake: FakeKratos, public: httpx.Client, method: str, has_body: bool
) -> None:
    """Go's net/http Redirect writes a small HTML body for GET and HEAD only."""
    if method == "POST":
        fake.create_identity("a@example.com")
        start = public.get("/self-service/login/browser")
        flow_id = start.headers["Location"].split("flow=")[1]
        csrf = start.headers["Set-Cookie"].split(";")[0].split("=", 1)[1]
        answer = public.post(
            f"/self-service/login?flow={flow_id}",
            data={
                "method": "password",
                "identifier": "a@example.com",
                "password": "x",
                "csrf_token": csrf,
            },
        )
    else:
        answer = public.request(method, "/self-service/login/browser")
    assert answer.status_code == 303
    location = answer.headers["Location"]
    if method == "GET":
        assert answer.text == f'<a href="{location}">See Other</a>.\n\n'
    assert (answer.headers.get("Content-Type") == "text/html; charset=utf-8") is has_body


# ------------------------------------------------------------ item 10: canonical headers


def test_served_headers_have_canonical_names(fake: FakeKratos) -> None:
    """Go's net/http writes canonical header names (textproto.CanonicalMIMEHeaderKey)."""
    from http.client import HTTPConnection
    from urllib.parse import urlsplit

    from kratos_aal.testing import serve

    session = fake.session("aal1")
    with serve(fake) as url:
        parts = urlsplit(url)
        connection = HTTPConnection(parts.hostname or "", parts.port)
        connection.request("GET", "/self-service/login/browser")
        start = connection.getresponse()
        start.read()
        names = [name for name, _ in start.getheaders()]
        connection.request("GET", "/sessions/whoami", headers={"X-Session-Token": session.token})
        whoami = connection.getresponse()
        whoami.read()
        connection.close()
    assert "Set-Cookie" in names and "Location" in names
    assert "X-Kratos-Authenticated-Identity-Id" in [name for name, _ in whoami.getheaders()]


# --------------------------------------------------- item 11: wrong TOTP code in settings


def test_wrong_settings_totp_code_sits_on_its_node(fake: FakeKratos, public: httpx.Client) -> None:
    """strategy/totp/settings.go: 4000008 is attached to the totp_code node, not ui.messages."""
    session = fake.session("aal1")
    flow = public.get("/self-service/settings/api", headers=session.headers).json()
    answer = public.post(
        f"/self-service/settings?flow={flow['id']}",
        json={"method": "totp", "totp_code": "000000"},
        headers=session.headers,
    )
    assert answer.status_code == 400
    ui = answer.json()["ui"]
    code = next(n for n in ui["nodes"] if n["attributes"].get("name") == "totp_code")
    assert [m["id"] for m in code["messages"]] == [4000008]
    assert "messages" not in ui
    assert_valid("settingsFlow", answer.json())


def test_session_cookies_look_like_securecookie_values() -> None:
    """gorilla/securecookie (Kratos's cookie store) encodes base64 of "<unix time>|...":
    a value starts "MT" for today's times, so never with "-" (which a CLI would read as an
    option)."""
    fake = FakeKratos()
    cookies = [fake.session("aal1").cookie for _ in range(200)]
    assert all(cookie.startswith("MT") for cookie in cookies)
    assert len(set(cookies)) == 200

"""FakeKratos answers as Kratos does, one pinned behaviour per test (issue 11).

Each docstring names where Kratos defines the behaviour: a section of
``BEHAVIOR.md`` (written from Kratos commit b86338da) or a file of Kratos's source.
"""

from __future__ import annotations

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
    """cmd/daemon/serve.go: the admin router is served on serve.admin only (port 4434)."""
    identity = fake.create_identity("a@example.com")
    assert fake.admin_url == "http://127.0.0.1:4434"
    assert public.get(f"/admin/identities/{identity.id}").status_code == 404
    assert public.get("/admin/identities").status_code == 404
    assert admin.get(f"/admin/identities/{identity.id}").status_code == 200
    assert admin.get("/sessions/whoami").status_code == 404


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
    assert admin.patch(f"/admin/sessions/{session.id}/extend").status_code == 404
    assert admin.get("/admin/sessions").json() == []


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
        pytest.param("GET", "/admin/identities/nope/sessions", id="identity-sessions"),
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
    assert f'included the "{next(iter(header))}" key' in answer.json()["error"]["reason"]


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

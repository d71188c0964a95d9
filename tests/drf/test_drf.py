"""Django REST framework: KratosAuthentication and the AAL permissions, with real DRF."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from rest_framework.test import APIClient

from kratos_aal.testing import FakeKratos, FakeSession

pytestmark = pytest.mark.urls("tests.drf.urls")

KRATOS = "http://127.0.0.1:4433"
HTML = {"HTTP_ACCEPT": "text/html,application/xhtml+xml,*/*;q=0.8"}
JSON = {"HTTP_ACCEPT": "application/json"}
# Every DRF style of view that requires aal2.
AAL2_VIEWS = [
    pytest.param("/balance/", id="APIView"),
    pytest.param("/accounts/", id="ViewSet-list"),
    pytest.param("/accounts/7/", id="ViewSet-detail"),
    pytest.param("/transfer/", id="api_view"),
]


def browser(session: FakeSession | None = None) -> APIClient:
    client = APIClient()
    if session is not None:
        client.cookies.load(session.cookies)
    return client


def mobile(session: FakeSession, how: str) -> APIClient:
    """A client that sends a session token, as Kratos's native apps do."""
    client = APIClient()
    if how == "x-session-token":
        client.credentials(HTTP_X_SESSION_TOKEN=session.token)
    else:
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {session.token}")
    return client


def error_id(reply: Any) -> str:
    return str(reply.json()["error"]["id"])


def query(url: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(url).query)


@pytest.mark.parametrize("path", AAL2_VIEWS)
def test_aal2_session_is_allowed_with_the_session_as_auth(
    fake_kratos: FakeKratos, path: str
) -> None:
    session = fake_kratos.session("aal2")
    reply = browser(session).get(path, **JSON)
    assert reply.status_code == 200
    body = reply.json()
    body = body[0] if isinstance(body, list) else body
    assert body["session"] == session.id
    assert body["user"] == session.identity.email


@pytest.mark.parametrize("path", AAL2_VIEWS)
def test_no_session_json_is_401_session_inactive(fake_kratos: FakeKratos, path: str) -> None:
    reply = browser().get(path, **JSON)
    assert reply.status_code == 401
    assert error_id(reply) == "session_inactive"
    assert reply.json()["error"]["code"] == 401
    assert reply.json()["redirect_browser_to"].startswith(f"{KRATOS}/self-service/login/browser?")
    assert fake_kratos.calls["/sessions/whoami"] == 0


@pytest.mark.parametrize("path", AAL2_VIEWS)
def test_no_session_browser_is_303_to_login(fake_kratos: FakeKratos, path: str) -> None:
    reply = browser().get(path, **HTML)
    assert reply.status_code == 303
    assert reply["Location"].startswith(f"{KRATOS}/self-service/login/browser?")
    assert query(reply["Location"]) == {"return_to": [f"http://testserver{path}"]}


@pytest.mark.parametrize("path", AAL2_VIEWS)
def test_aal1_json_is_403_step_up(fake_kratos: FakeKratos, path: str) -> None:
    reply = browser(fake_kratos.session("aal1", totp=True)).get(path, **JSON)
    assert reply.status_code == 403
    assert error_id(reply) == "session_aal2_required"
    assert query(reply.json()["redirect_browser_to"])["aal"] == ["aal2"]


@pytest.mark.parametrize("path", AAL2_VIEWS)
def test_aal1_browser_is_303_to_step_up(fake_kratos: FakeKratos, path: str) -> None:
    reply = browser(fake_kratos.session("aal1", totp=True)).get(path, **HTML)
    assert reply.status_code == 303
    assert query(reply["Location"]) == {"aal": ["aal2"], "return_to": [f"http://testserver{path}"]}


def test_aal1_without_second_factor_is_enrollment(fake_kratos: FakeKratos) -> None:
    reply = browser(fake_kratos.session("aal1", totp=False)).get("/balance/", **JSON)
    assert reply.status_code == 403
    assert error_id(reply) == "session_aal2_enrollment_required"


def test_stale_session_is_refresh_required(fake_kratos: FakeKratos) -> None:
    old = browser(fake_kratos.session("aal2", authenticated_at=301)).get("/fresh/", **JSON)
    assert old.status_code == 403
    assert error_id(old) == "session_refresh_required"
    fresh = browser(fake_kratos.session("aal2", authenticated_at=299)).get("/fresh/", **JSON)
    assert fresh.status_code == 200


@pytest.mark.parametrize("path", ["/balance/", "/public/", "/profile/"])
def test_kratos_trouble_is_503_with_retry_after(fake_kratos: FakeKratos, path: str) -> None:
    session = fake_kratos.session("aal2")
    fake_kratos.fail("http_500", times=10)
    reply = browser(session).get(path, **JSON)
    assert reply.status_code == 503
    assert error_id(reply) == "kratos_unavailable"
    assert int(reply["Retry-After"]) > 0
    assert "redirect_browser_to" not in reply.json()


@pytest.mark.parametrize("how", ["x-session-token", "bearer"])
@pytest.mark.parametrize("path", AAL2_VIEWS)
def test_mobile_token_client(fake_kratos: FakeKratos, how: str, path: str) -> None:
    allowed = mobile(fake_kratos.session("aal2"), how).get(path)
    assert allowed.status_code == 200
    # A token client gets JSON even when it asks for HTML: it cannot follow a browser redirect.
    denied = mobile(fake_kratos.session("aal1", totp=True), how).get(path, **HTML)
    assert denied.status_code == 403
    assert error_id(denied) == "session_aal2_required"
    assert "redirect_browser_to" in denied.json()


def test_revoked_token_is_401(fake_kratos: FakeKratos) -> None:
    session = fake_kratos.session("aal2")
    fake_kratos.revoke(session)
    reply = mobile(session, "x-session-token").get("/balance/")
    assert reply.status_code == 401
    assert error_id(reply) == "session_inactive"
    assert reply["WWW-Authenticate"] == 'Bearer realm="kratos"'


def test_drf_own_not_authenticated_is_401(fake_kratos: FakeKratos) -> None:
    # DRF's IsAuthenticated beside KratosAuthentication: 401 with the challenge, not 403.
    reply = browser().get("/authenticated/", **JSON)
    assert reply.status_code == 401
    assert reply["WWW-Authenticate"] == 'Bearer realm="kratos"'


def test_unsafe_method_denied_and_not_run(fake_kratos: FakeKratos) -> None:
    reply = browser(fake_kratos.session("aal1", totp=True)).post(
        "/balance/", {}, format="json", HTTP_REFERER="http://testserver/pay/"
    )
    assert reply.status_code == 403
    assert query(reply.json()["redirect_browser_to"])["return_to"] == ["http://testserver/pay/"]


def test_cookie_post_needs_csrf(fake_kratos: FakeKratos) -> None:
    client = APIClient(enforce_csrf_checks=True)
    client.cookies.load(fake_kratos.session("aal2").cookies)
    assert client.post("/balance/", {}, format="json").status_code == 403
    token_client = APIClient(enforce_csrf_checks=True)
    token_client.credentials(HTTP_X_SESSION_TOKEN=fake_kratos.session("aal2").token)
    assert token_client.post("/balance/", {}, format="json").status_code == 201


def test_public_view_runs_anonymous_and_with_a_session(fake_kratos: FakeKratos) -> None:
    assert browser().get("/public/", **JSON).json() == {"user": "AnonymousUser", "session": None}
    session = fake_kratos.session("aal1")
    assert browser(session).get("/public/", **JSON).json()["session"] == session.id


def test_is_aal1(fake_kratos: FakeKratos) -> None:
    assert browser(fake_kratos.session("aal1")).get("/profile/", **JSON).status_code == 200
    assert browser().get("/profile/", **JSON).status_code == 401


def test_or_lets_the_other_side_allow(fake_kratos: FakeKratos, django_user_model: Any) -> None:
    aal1 = fake_kratos.session("aal1", totp=True)
    # IsAAL2 | IsAdminUser: an aal1 user who is not a Django admin gets Kratos's answer.
    reply = browser(aal1).get("/either/", **JSON)
    assert reply.status_code == 403
    assert error_id(reply) == "session_aal2_required"
    assert browser(fake_kratos.session("aal2")).get("/either/", **JSON).status_code == 200
    assert browser(fake_kratos.session("aal2")).get("/admin-or/", **JSON).status_code == 200
    assert error_id(browser(aal1).get("/admin-or/", **JSON)) == "session_aal2_required"


def test_and_needs_both(fake_kratos: FakeKratos) -> None:
    password_only = browser(fake_kratos.session("aal2")).get("/both/", **JSON)
    assert password_only.status_code == 403
    assert error_id(password_only) == "session_refresh_required"
    webauthn = fake_kratos.session("aal2", methods=["password", "webauthn"])
    assert browser(webauthn).get("/both/", **JSON).status_code == 200


def test_browsable_api_denial_keeps_no_cache(fake_kratos: FakeKratos) -> None:
    reply = browser().get("/accounts/", **HTML)
    assert reply.status_code == 303
    assert reply["Cache-Control"] == "no-store"


@pytest.mark.django_db
def test_linked_django_user_with_kratos_backend(
    fake_kratos: FakeKratos, settings: Any, django_user_model: Any
) -> None:
    settings.AUTHENTICATION_BACKENDS = ["kratos_aal.integrations.django.KratosBackend"]
    session = fake_kratos.session("aal2")
    reply = mobile(session, "bearer").get("/balance/")
    assert reply.json()["user"] == session.identity.id  # the Django user's username
    assert django_user_model.objects.filter(username=session.identity.id).exists()


@pytest.mark.django_db
def test_unknown_identity_without_create_users_is_refused(
    fake_kratos: FakeKratos, settings: Any
) -> None:
    # Never a looser KratosUser when the app links users (tests/drf/test_linked_users.py).
    settings.AUTHENTICATION_BACKENDS = ["kratos_aal.integrations.django.KratosBackend"]
    settings.KRATOS_AAL = {**settings.KRATOS_AAL, "CREATE_USERS": False}
    session = fake_kratos.session("aal2")
    assert mobile(session, "bearer").get("/balance/").status_code == 401


def test_kratos_user() -> None:
    from kratos_aal import Session
    from kratos_aal.integrations.drf import KratosUser

    fake = FakeKratos()
    handle = fake.session("aal1")
    user = KratosUser(Session.from_json(fake.session_json(handle)))
    assert user.pk == handle.identity.id
    assert user.get_username() == str(user) == handle.identity.email
    assert user.is_authenticated and not user.is_anonymous
    assert not user.is_staff and not user.is_superuser
    assert user.has_perm("auth.view_group") is False


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/either/", "/kratos-first/", "/admin-or/"])
def test_or_a_django_admin_with_aal1_is_allowed(
    fake_kratos: FakeKratos, settings: Any, django_user_model: Any, path: str
) -> None:
    settings.AUTHENTICATION_BACKENDS = ["kratos_aal.integrations.django.KratosBackend"]
    session = fake_kratos.session("aal1", totp=True)
    client = browser(session)
    assert client.get(path, **JSON).status_code == 403
    django_user_model.objects.filter(username=session.identity.id).update(is_staff=True)
    assert client.get(path, **JSON).status_code == 200


def test_withheld_aal1_session_gets_step_up() -> None:
    from kratos_aal.integrations.django.conf import override_clients

    strict = FakeKratos(whoami_required_aal="highest_available")
    session = strict.session("aal1", totp=True)
    with strict.client() as client, override_clients(client, strict.async_client()):
        profile = browser(session).get("/profile/", **JSON)  # aal1 is enough, but withheld
        balance = browser(session).get("/balance/", **JSON)
    assert profile.status_code == 403
    assert error_id(profile) == "session_aal2_required"
    assert error_id(balance) == "session_aal2_required"


@pytest.mark.parametrize("host", ["-bad-", "x..y"])
def test_hostile_host_is_400(fake_kratos: FakeKratos, settings: Any, host: str) -> None:
    settings.ALLOWED_HOSTS = ["*"]
    reply = browser(fake_kratos.session("aal1", totp=True)).get("/balance/", HTTP_HOST=host)
    assert reply.status_code == 400


def test_repr() -> None:
    from kratos_aal.integrations.drf import RequireAAL

    assert "aal2" in repr(RequireAAL("aal2", max_age=60))


# Spellings a server may pass through as they are: none reaches a DRF view without aal2.
# (Django's resolver routes none of them today, and the permissions belong to the view, not
# to a path; the battery keeps both true.)
SPELLINGS = [
    "//balance/",
    "///balance/",
    "/balance//",
    "/./balance/",
    "/x/../balance/",
    "/%2fbalance/",
    "//accounts/7/",
    "/accounts//7/",
    "/accounts/./7/",
    "//transfer/",
]


@pytest.mark.parametrize("path", SPELLINGS)
def test_no_spelling_reaches_a_view_without_aal2(fake_kratos: FakeKratos, path: str) -> None:
    for session in (None, fake_kratos.session("aal1", totp=True)):
        client = APIClient()
        if session is not None:
            client.cookies.load(session.cookies)
        reply = client.generic("GET", "/", HTTP_ACCEPT="application/json", PATH_INFO=path)
        assert reply.status_code in {401, 403, 404}, (path, reply.status_code)
        assert b'"session"' not in reply.content


def test_raw_path_info_reaches_views(fake_kratos: FakeKratos) -> None:
    # The battery's way of calling reaches a view at all: with aal2 and the plain path, 200.
    client = browser(fake_kratos.session("aal2"))
    reply = client.generic("GET", "/", HTTP_ACCEPT="application/json", PATH_INFO="/balance/")
    assert reply.status_code == 200


def test_a_cache_hit_authenticates_without_whoami_with_a_user_of_its_own(
    fake_kratos: FakeKratos,
) -> None:
    from django.test import RequestFactory
    from rest_framework.request import Request

    from kratos_aal.integrations.drf import KratosAuthentication, KratosUser

    ada, bob = fake_kratos.session("aal2"), fake_kratos.session("aal1")
    factory = RequestFactory()

    def authenticated(session: FakeSession, method: str = "get") -> tuple[Any, Any]:
        request = getattr(factory, method)("/", HTTP_COOKIE=session.cookie_header, **JSON)
        found = KratosAuthentication().authenticate(Request(request))
        assert found is not None
        return found

    first = authenticated(ada)  # a miss: whoami
    assert fake_kratos.calls["/sessions/whoami"] == 1
    hits = [authenticated(ada) for _ in range(2)]
    assert fake_kratos.calls["/sessions/whoami"] == 1
    assert all(session.id == ada.id for _, session in [first, *hits])
    # A user per request (what an app sets on request.user must not outlive the request).
    assert all(isinstance(user, KratosUser) for user, _ in hits)
    assert hits[0][0] is not hits[1][0]
    assert {user.username for user, _ in hits} == {ada.identity.email}
    # Another session is another user, on its miss and on its hits.
    others = [authenticated(bob) for _ in range(2)]
    assert {user.username for user, _ in others} == {bob.identity.email}
    assert others[1][0] is not hits[0][0]
    assert fake_kratos.calls["/sessions/whoami"] == 2
    # An unsafe method goes the whole way (the CSRF check), without asking Kratos again.
    with pytest.raises(Exception, match="CSRF"):
        authenticated(ada, "post")
    assert fake_kratos.calls["/sessions/whoami"] == 2

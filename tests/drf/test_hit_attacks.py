"""Attacks on DRF's cache hit path (KratosAuthentication reading ``request.META``).

From an attacker's pass by a reviewer who did not write the hit path: the first two
failed on its first version (one KratosUser kept per cached session), the rest record
attacks that held.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
from django.test import RequestFactory
from django.urls import include, path
from rest_framework.permissions import IsAdminUser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.test import APIClient
from rest_framework.views import APIView

from kratos_aal._credentials import Credentials
from kratos_aal.integrations.django import conf
from kratos_aal.integrations.drf import IsAAL1, IsAAL2, KratosAuthentication, KratosUser
from kratos_aal.testing import FakeKratos

JSON = {"HTTP_ACCEPT": "application/json"}
BACKEND = "kratos_aal.integrations.django.KratosBackend"


class Elevate(APIView):
    """An app view that adjusts request.user for this request only (e.g. a sudo header)."""

    authentication_classes = [KratosAuthentication]
    permission_classes = [IsAAL1]

    def get(self, request: Request) -> Response:
        if request.headers.get("X-Sudo") == "yes":  # the app's own per-request condition
            request.user.is_staff = True
        return Response({"staff": request.user.is_staff})


class AdminOnly(APIView):
    authentication_classes = [KratosAuthentication]
    permission_classes = [IsAAL1 & IsAdminUser]

    def get(self, request: Request) -> Response:
        return Response({"ok": True})


urlpatterns = [
    path("elevate/", Elevate.as_view()),
    path("admin-only/", AdminOnly.as_view()),
    path("", include("tests.drf.urls")),
]
pytestmark = pytest.mark.urls(__name__)


def authenticate(**meta: Any) -> Any:
    method = meta.pop("method", "get")
    request = RequestFactory().generic(method, "/", **meta)
    return KratosAuthentication().authenticate(Request(request))


# --- What the first version got wrong ------------------------------------------------------


def test_what_one_request_sets_on_its_user_does_not_outlive_it(
    fake_kratos: FakeKratos,
) -> None:
    # A KratosUser shared by the requests of one session would keep what an app sets on
    # request.user for one request: here staff rights granted under a per-request condition.
    session = fake_kratos.session("aal1")
    client = APIClient()
    client.cookies.load(session.cookies)
    assert client.get("/elevate/", **JSON).json() == {"staff": False}  # miss
    assert client.get("/elevate/", HTTP_X_SUDO="yes", **JSON).json() == {"staff": True}  # hit
    # Without the condition, a new request must be a plain user again.
    assert client.get("/elevate/", **JSON).json() == {"staff": False}
    assert client.get("/admin-only/", **JSON).status_code == 403


def test_starlette_middleware_on_djangos_client_reads_drfs_hits(
    fake_kratos: FakeKratos,
) -> None:
    # conf.clients() makes the async client share the sync client's cache, so a
    # KratosAALMiddleware given Django's async client (DRF mounted in a Starlette or FastAPI
    # app) reads the same CachedSession: DRF's hits must leave nothing there that Starlette
    # reads (its extra slot), or a plain GET is a 500.
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route
    from starlette.testclient import TestClient

    from kratos_aal.integrations.starlette import KratosAALMiddleware

    sync_client, async_client = conf.clients()
    async_client._share_cache(sync_client)  # as conf.clients() does outside tests
    session = fake_kratos.session("aal1")
    for _ in range(2):  # a miss, then a hit
        assert authenticate(HTTP_COOKIE=session.cookie_header) is not None

    async def home(request: Any) -> PlainTextResponse:
        return PlainTextResponse(str(request.user.display_name))

    app = KratosAALMiddleware(
        Starlette(routes=[Route("/x", home)]), client=async_client, rules={"/x": "aal1"}
    )
    with TestClient(app, raise_server_exceptions=False) as client:
        client.cookies.update(session.cookies)
        reply = client.get("/x")
    assert reply.status_code == 200, reply.text


# --- Attacks that held ------------------------------------------------------------------


def warm(cookie_header: str) -> None:
    """A miss then a hit, so the entry is cached."""
    for _ in range(2):
        assert authenticate(HTTP_COOKIE=cookie_header) is not None


def test_invalid_x_session_token_never_falls_back_to_a_cached_cookie(
    fake_kratos: FakeKratos,
) -> None:
    ada = fake_kratos.session("aal2")
    warm(ada.cookie_header)
    for token in ["not a token", "x" * 5000, "t\u00e9", '"quoted"x y', "\x01"]:
        assert authenticate(HTTP_COOKIE=ada.cookie_header, HTTP_X_SESSION_TOKEN=token) is None
    # Whitespace-only token: both paths read the cookie.
    found = authenticate(HTTP_COOKIE=ada.cookie_header, HTTP_X_SESSION_TOKEN="  ")
    assert found is not None and found[1].id == ada.id


def test_token_beats_cached_cookie_and_cookie_beats_bearer(fake_kratos: FakeKratos) -> None:
    ada, bob = fake_kratos.session("aal2"), fake_kratos.session("aal2")
    warm(ada.cookie_header)
    assert authenticate(HTTP_X_SESSION_TOKEN=bob.token)[1].id == bob.id  # cache bob's token
    both = authenticate(HTTP_COOKIE=ada.cookie_header, HTTP_X_SESSION_TOKEN=bob.token)
    assert both[1].id == bob.id
    spaced = authenticate(HTTP_COOKIE=ada.cookie_header, HTTP_X_SESSION_TOKEN=f"  {bob.token} ")
    assert spaced[1].id == bob.id
    bearer = authenticate(HTTP_COOKIE=ada.cookie_header, HTTP_AUTHORIZATION=f"Bearer {bob.token}")
    assert bearer[1].id == ada.id


def test_cookie_spellings_pick_what_the_full_path_picks(fake_kratos: FakeKratos) -> None:
    ada, bob = fake_kratos.session("aal1"), fake_kratos.session("aal1")
    name = fake_kratos.cookie_name
    warm(ada.cookie_header)
    warm(bob.cookie_header)
    a, b = ada.cookies[name], bob.cookies[name]
    cases = {
        f"{name}={a}; {name}={b}": ada.id,
        f'{name}="{a}"': ada.id,
        f"{name}=bad\\v; {name}={b}": bob.id,
        f"{name}=; {name}={b}": bob.id,
        f"x={name}={a}; {name}={b}": bob.id,
        f"{name}x={a}; {name}={b}": bob.id,
        f"{name}=\x1f{a}": ada.id,
        f"a=b;\t{name}={b}": bob.id,
        f"{name} ={b}": bob.id,
    }
    for header, expected in cases.items():
        found = authenticate(HTTP_COOKIE=header)
        assert found is not None and found[1].id == expected, header
    assert authenticate(HTTP_COOKIE=f"{name}={a}\u00e9") is None


@pytest.mark.parametrize("method", ["head", "options", "get", "GET", "Get", "trace"])
def test_methods(fake_kratos: FakeKratos, method: str) -> None:
    ada = fake_kratos.session("aal2")
    warm(ada.cookie_header)
    found = authenticate(HTTP_COOKIE=ada.cookie_header, method=method)
    assert found is not None and found[1].id == ada.id


@pytest.mark.parametrize("method", ["post", "put", "patch", "delete", "PoSt"])
def test_unsafe_methods_still_need_csrf(fake_kratos: FakeKratos, method: str) -> None:
    ada = fake_kratos.session("aal2")
    warm(ada.cookie_header)
    with pytest.raises(Exception, match="CSRF"):
        authenticate(HTTP_COOKIE=ada.cookie_header, method=method)


def test_invalidated_and_expired_sessions_are_not_hits(fake_kratos: FakeKratos) -> None:
    ada = fake_kratos.session("aal1")
    warm(ada.cookie_header)
    fake_kratos.revoke(ada)
    conf.clients()[0].invalidate(Credentials(cookie=ada.cookies[fake_kratos.cookie_name]))
    assert authenticate(HTTP_COOKIE=ada.cookie_header) is None
    bob = fake_kratos.session("aal1", expires_in=5)
    warm(bob.cookie_header)
    fake_kratos.clock.advance(6)
    assert authenticate(HTTP_COOKIE=bob.cookie_header) is None


def test_hop_cookie_goes_the_whole_way(fake_kratos: FakeKratos) -> None:
    ada = fake_kratos.session("aal1")
    warm(ada.cookie_header)
    request = RequestFactory().get("/", HTTP_COOKIE=ada.cookie_header + "; kratos_aal_hops=1")
    assert KratosAuthentication().authenticate(Request(request)) is not None
    assert "_kratos_aal_authenticated" not in request.__dict__


def test_kratos_users_are_per_session_never_shared_between_sessions(
    fake_kratos: FakeKratos,
) -> None:
    ada = fake_kratos.session("aal1")
    same = fake_kratos.session("aal2", identity=ada.identity)
    warm(ada.cookie_header)
    warm(same.cookie_header)
    one = authenticate(HTTP_COOKIE=ada.cookie_header)
    two = authenticate(HTTP_COOKIE=same.cookie_header)
    assert one[0] is not two[0] and one[0].session.id == ada.id and two[0].session.id == same.id
    assert one[0].session is one[1] and two[0].session is two[1]


def test_a_username_set_on_one_hit_is_that_requests_alone(fake_kratos: FakeKratos) -> None:
    # KratosUser works its username out when first read (a hit need not pay for it); an app
    # may still set it for one request, and the next request's user reads the identity's.
    ada = fake_kratos.session("aal1")
    warm(ada.cookie_header)
    first, _ = authenticate(HTTP_COOKIE=ada.cookie_header)
    assert "username" not in vars(first)  # not worked out on the hit path
    first.username = "sudo:ada"
    assert first.get_username() == str(first) == "sudo:ada"
    second, _ = authenticate(HTTP_COOKIE=ada.cookie_header)
    assert second.get_username() == str(second) == ada.identity.email
    assert second.username == ada.identity.email


def test_aal1_hit_does_not_satisfy_aal2(fake_kratos: FakeKratos) -> None:
    ada = fake_kratos.session("aal1")
    client = APIClient()
    client.cookies.load(ada.cookies)
    for _ in range(3):
        assert client.get("/profile/", **JSON).status_code == 200
        assert client.get("/balance/", **JSON).status_code == 403
        assert client.get("/fresh/", **JSON).status_code == 403
        assert client.get("/either/", **JSON).status_code == 403


@pytest.mark.django_db
def test_linked_user_deactivated_between_hits_and_linking_flips(
    fake_kratos: FakeKratos, settings: Any, django_user_model: Any
) -> None:
    ada = fake_kratos.session("aal2")
    client = APIClient()
    client.cookies.load(ada.cookies)
    for _ in range(2):
        assert isinstance(client.get("/profile/", **JSON).wsgi_request.user, KratosUser)
    settings.AUTHENTICATION_BACKENDS = [BACKEND]  # override_settings: the memo is forgotten
    for _ in range(2):
        reply = client.get("/balance/", **JSON)
        assert reply.status_code == 200 and reply.json()["user"] == ada.identity.id
    django_user_model.objects.update(is_active=False)
    for path_ in ["/balance/", "/profile/", "/public/", "/authenticated/"]:
        assert client.get(path_, **JSON).status_code == 401
    settings.KRATOS_AAL = {**settings.KRATOS_AAL}
    django_user_model.objects.all().delete()
    settings.KRATOS_AAL = {**settings.KRATOS_AAL, "CREATE_USERS": False}
    client = APIClient()
    client.cookies.load(ada.cookies)
    assert client.get("/profile/", **JSON).status_code == 401


def test_audit_when_not_quiet_never_logs_the_cookie(fake_kratos: FakeKratos, caplog: Any) -> None:
    ada = fake_kratos.session("aal2")
    client = APIClient()
    client.cookies.load(ada.cookies)
    client.credentials(HTTP_X_SESSION_TOKEN=ada.token)
    with caplog.at_level(logging.DEBUG, logger="kratos_aal"):
        for _ in range(3):
            assert client.get("/balance/", **JSON).status_code == 200
            assert client.get("/profile/", HTTP_COOKIE="kratos_aal_hops=2", **JSON).status_code
    secret = ada.cookies[fake_kratos.cookie_name]
    assert all(
        secret not in r.getMessage() and ada.token not in r.getMessage() for r in caplog.records
    )


def test_hit_left_by_a_drf_request_is_not_taken_for_another_requirement(
    fake_kratos: FakeKratos,
) -> None:
    ada = fake_kratos.session("aal1")
    warm(ada.cookie_header)
    django_request = RequestFactory().get("/", HTTP_COOKIE=ada.cookie_header, **JSON)
    first = Request(django_request, authenticators=[KratosAuthentication()])
    assert first.auth.id == ada.id and IsAAL1().has_permission(first, None)
    from kratos_aal.integrations.drf import KratosDenied

    with pytest.raises(KratosDenied):
        IsAAL2().has_permission(first, None)

"""DRF with linked Django users: an identity the app refuses is never authenticated."""

from __future__ import annotations

from typing import Any

import pytest
from rest_framework.test import APIClient

from kratos_aal.integrations.django.models import KratosIdentityLink
from kratos_aal.integrations.django.users import KratosBackend
from kratos_aal.integrations.drf import IsAAL2
from kratos_aal.testing import FakeKratos, FakeSession

pytestmark = [pytest.mark.urls("tests.drf.urls"), pytest.mark.django_db]

BACKEND = "kratos_aal.integrations.django.KratosBackend"
USER_MIDDLEWARE = "kratos_aal.integrations.django.KratosUserMiddleware"
MODULE_MIDDLEWARE = "kratos_aal.integrations.django.users.KratosUserMiddleware"
OWN_BACKEND = "tests.drf.test_linked_users.OwnBackend"
AUTH_MIDDLEWARE = "django.contrib.auth.middleware.AuthenticationMiddleware"
JSON = {"HTTP_ACCEPT": "application/json"}
# Views that a refused identity must not reach, and the public one.
GUARDED = [
    pytest.param("/authenticated/", id="IsAuthenticated"),
    pytest.param("/balance/", id="IsAAL2"),
    pytest.param("/profile/", id="IsAAL1"),
    pytest.param("/fresh/", id="RequireAAL"),
]


def with_cookie(session: FakeSession) -> APIClient:
    client = APIClient()
    client.cookies.load(session.cookies)
    return client


def with_token(session: FakeSession) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {session.token}")
    return client


CLIENTS = [pytest.param(with_cookie, id="cookie"), pytest.param(with_token, id="token")]


class OwnBackend(KratosBackend):
    """An app's own subclass of KratosBackend, refusing one more kind of user."""

    def user_can_authenticate(self, user: Any) -> bool:
        return bool(super().user_can_authenticate(user)) and user.last_name != "banned"


@pytest.fixture(params=["backend", "middleware", "subclass", "module-middleware"])
def linked(request: Any, settings: Any) -> str:
    """Linked users on, by ``KratosBackend`` or by ``KratosUserMiddleware`` alone.

    Each as an app may list it: the package's name, an app's subclass, the module's name.
    """
    if request.param == "backend":
        settings.AUTHENTICATION_BACKENDS = [BACKEND]
    elif request.param == "subclass":
        settings.AUTHENTICATION_BACKENDS = [OWN_BACKEND]
    else:
        name = USER_MIDDLEWARE if request.param == "middleware" else MODULE_MIDDLEWARE
        middleware = list(settings.MIDDLEWARE)
        middleware.insert(middleware.index(AUTH_MIDDLEWARE) + 1, name)
        settings.MIDDLEWARE = middleware
    return str(request.param)


def refused(reply: Any) -> None:
    assert reply.status_code == 401, reply.content
    assert reply.json() == {"detail": "This identity has no active user here."}
    assert reply["WWW-Authenticate"] == 'Bearer realm="kratos"'


@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize("path", GUARDED)
def test_deactivated_user_is_refused(
    fake_kratos: FakeKratos, django_user_model: Any, linked: str, client: Any, path: str
) -> None:
    session = fake_kratos.session("aal2")
    assert client(session).get(path, **JSON).status_code == 200
    django_user_model.objects.filter(username=session.identity.id).update(is_active=False)
    refused(client(session).get(path, **JSON))


@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize("path", GUARDED)
def test_unlinked_identity_without_create_users_is_refused(
    fake_kratos: FakeKratos,
    settings: Any,
    django_user_model: Any,
    linked: str,
    client: Any,
    path: str,
) -> None:
    settings.KRATOS_AAL = {**settings.KRATOS_AAL, "CREATE_USERS": False}
    session = fake_kratos.session("aal2")
    refused(client(session).get(path, **JSON))
    assert not django_user_model.objects.exists()


def test_refused_identity_cannot_post(
    fake_kratos: FakeKratos, django_user_model: Any, linked: str
) -> None:
    session = fake_kratos.session("aal2")
    client = with_token(session)
    assert client.post("/balance/", {}, format="json").status_code == 201
    django_user_model.objects.update(is_active=False)
    refused(client.post("/balance/", {}, format="json"))


def test_public_view_refuses_the_identity_too(
    fake_kratos: FakeKratos, settings: Any, django_user_model: Any
) -> None:
    # As DRF's TokenAuthentication does for an inactive user: the credential is refused
    # wherever KratosAuthentication reads it; without it the view runs anonymous.
    settings.AUTHENTICATION_BACKENDS = [BACKEND]
    session = fake_kratos.session("aal1")
    with_cookie(session).get("/public/", **JSON)
    django_user_model.objects.update(is_active=False)
    refused(with_cookie(session).get("/public/", **JSON))
    assert APIClient().get("/public/", **JSON).json() == {"user": "AnonymousUser", "session": None}


def test_active_linked_user_is_the_user(
    fake_kratos: FakeKratos, django_user_model: Any, linked: str
) -> None:
    session = fake_kratos.session("aal2")
    reply = with_token(session).get("/balance/", **JSON)
    assert reply.json()["user"] == session.identity.id  # the Django user's username


def test_without_linked_users_the_identity_is_a_kratos_user(
    fake_kratos: FakeKratos, django_user_model: Any
) -> None:
    session = fake_kratos.session("aal2")
    reply = with_token(session).get("/balance/", **JSON)
    assert reply.json()["user"] == session.identity.email  # a KratosUser
    assert not django_user_model.objects.exists()


def test_user_fields_collision_is_refused_not_a_500(
    fake_kratos: FakeKratos, settings: Any, django_user_model: Any, linked: str
) -> None:
    settings.KRATOS_AAL = {**settings.KRATOS_AAL, "USER_FIELDS": {"username": "email"}}
    session = fake_kratos.session("aal2")
    django_user_model.objects.create_user(session.identity.email)
    refused(with_token(session).get("/balance/", **JSON))


@pytest.mark.parametrize("other", ["unlinked", "deactivated"])
def test_session_authentication_first_never_mixes_two_people(
    fake_kratos: FakeKratos, settings: Any, django_user_model: Any, other: str
) -> None:
    # A password login of staff plus someone else's aal2 session that the app refuses:
    # IsAAL2 judges that session, so SessionAuthentication must not find the staff user.
    middleware = list(settings.MIDDLEWARE)
    middleware.insert(middleware.index(AUTH_MIDDLEWARE) + 1, USER_MIDDLEWARE)
    settings.MIDDLEWARE = middleware
    settings.AUTHENTICATION_BACKENDS = [BACKEND, "django.contrib.auth.backends.ModelBackend"]
    staff = django_user_model.objects.create_user("staff", password="x", is_staff=True)
    session = fake_kratos.session("aal2")
    if other == "deactivated":
        with_cookie(session).get("/profile/", **JSON)
        django_user_model.objects.filter(username=session.identity.id).update(is_active=False)
    else:
        settings.KRATOS_AAL = {**settings.KRATOS_AAL, "CREATE_USERS": False}
    client = with_cookie(session)
    client.force_login(staff, backend="django.contrib.auth.backends.ModelBackend")
    reply = client.get("/session-first/", **JSON)
    # 403, not 401: DRF takes the challenge from the first class, and SessionAuthentication
    # has none.
    assert reply.status_code == 403, reply.content
    assert reply.json() == {"detail": "This identity has no active user here."}
    # The staff user's own aal2 session is the staff user.
    KratosIdentityLink.objects.create(
        identity_id=(own := fake_kratos.session("aal2")).identity.id, user=staff
    )
    client.cookies.load(own.cookies)
    assert client.get("/session-first/", **JSON).json()["user"] == "staff"


@pytest.mark.parametrize("client", CLIENTS)
def test_the_apps_own_backend_decides(
    fake_kratos: FakeKratos, settings: Any, django_user_model: Any, client: Any
) -> None:
    # The subclass listed in AUTHENTICATION_BACKENDS refuses banned users: so does DRF, with
    # or without the middleware.
    settings.AUTHENTICATION_BACKENDS = [OWN_BACKEND]
    session = fake_kratos.session("aal2")
    assert client(session).get("/authenticated/", **JSON).status_code == 200
    django_user_model.objects.update(last_name="banned")
    refused(client(session).get("/authenticated/", **JSON))
    middleware = list(settings.MIDDLEWARE)
    middleware.insert(middleware.index(AUTH_MIDDLEWARE) + 1, USER_MIDDLEWARE)
    settings.MIDDLEWARE = middleware
    refused(client(session).get("/authenticated/", **JSON))


@pytest.mark.parametrize("login", [BACKEND, "django.contrib.auth.backends.ModelBackend"])
def test_another_authenticators_user_needs_its_own_session(
    fake_kratos: FakeKratos, settings: Any, django_user_model: Any, login: str
) -> None:
    # No KratosUserMiddleware to bind Django's session to Kratos's: SessionAuthentication
    # finds the staff user, and IsAAL2 must not judge someone else's session for it.
    settings.AUTHENTICATION_BACKENDS = [BACKEND, "django.contrib.auth.backends.ModelBackend"]
    staff = django_user_model.objects.create_user("staff", password="x", is_staff=True)
    other = fake_kratos.session("aal2")
    client = with_cookie(other)
    client.force_login(staff, backend=login)
    reply = client.get("/session-first/", **JSON)
    assert reply.status_code == 403, reply.content
    assert reply.json() == {"detail": "This Kratos session is not this user's."}
    # Cached now: the hit path asks the same.
    assert client.get("/session-first/", **JSON).status_code == 403
    # A Django permission on the other side of | still decides for the staff user.
    assert client.get("/session-first-or-admin/", **JSON).json()["user"] == "staff"
    staff.is_staff = False
    staff.save()
    assert client.get("/session-first-or-admin/", **JSON).status_code == 403
    own = fake_kratos.session("aal2")
    KratosIdentityLink.objects.create(identity_id=own.identity.id, user=staff)
    client.cookies.load(own.cookies)
    assert client.get("/session-first/", **JSON).json()["user"] == "staff"
    assert client.get("/session-first/", **JSON).json()["user"] == "staff"


def test_a_permission_takes_kratos_authentications_hit_only_for_its_user(
    fake_kratos: FakeKratos, settings: Any, django_user_model: Any
) -> None:
    # KratosAuthentication leaves its cache hit on the HttpRequest for the permissions.
    # Another DRF Request on the same HttpRequest, authenticated otherwise (an app's own
    # class that asked KratosAuthentication first, say), must not borrow it.
    from django.test import RequestFactory
    from rest_framework.authentication import BaseAuthentication
    from rest_framework.request import Request

    from kratos_aal.integrations.drf import KratosAuthentication, _NotTheirs

    settings.AUTHENTICATION_BACKENDS = [BACKEND, "django.contrib.auth.backends.ModelBackend"]
    staff = django_user_model.objects.create_user("staff", password="x")

    class Staff(BaseAuthentication):
        def authenticate(self, request: Any) -> tuple[Any, None]:
            return staff, None

    other = fake_kratos.session("aal2")
    factory = RequestFactory()
    for _ in range(2):  # a miss, then a cache hit that leaves itself on the request
        django_request = factory.get("/", HTTP_COOKIE=other.cookie_header, **JSON)
        authenticated = Request(django_request, authenticators=[KratosAuthentication()])
        assert authenticated.auth.id == other.id
        assert IsAAL2().has_permission(authenticated, None)
        borrowed = Request(django_request, authenticators=[Staff()])
        assert borrowed.user == staff
        with pytest.raises(_NotTheirs):
            IsAAL2().has_permission(borrowed, None)
    assert "_kratos_aal_authenticated" in django_request.__dict__
    assert fake_kratos.calls["/sessions/whoami"] == 1

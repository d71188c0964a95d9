"""Django users linked to Kratos identities: KratosUserMiddleware, KratosBackend, the login view."""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
from django.contrib.auth.models import Permission
from django.core import checks
from django.test import AsyncClient, Client

from kratos_aal.exceptions import ConfigurationError
from kratos_aal.integrations.django import conf
from kratos_aal.integrations.django.models import KratosIdentityLink
from kratos_aal.integrations.django.users import BACKEND, KratosBackend, _trait
from kratos_aal.testing import FakeKratos, FakeSession

pytestmark = [pytest.mark.urls("tests.django.users_urls"), pytest.mark.django_db]

KRATOS = "http://127.0.0.1:4433"
USER_MIDDLEWARE = "kratos_aal.integrations.django.KratosUserMiddleware"
AUTH_MIDDLEWARE = "django.contrib.auth.middleware.AuthenticationMiddleware"


@pytest.fixture(autouse=True)
def linked_users(settings: Any) -> None:
    middleware = list(settings.MIDDLEWARE)
    middleware.insert(middleware.index(AUTH_MIDDLEWARE) + 1, USER_MIDDLEWARE)
    settings.MIDDLEWARE = middleware
    settings.AUTHENTICATION_BACKENDS = [
        "kratos_aal.integrations.django.KratosBackend",
        "django.contrib.auth.backends.ModelBackend",
    ]
    settings.LOGIN_URL = "kratos_aal:login"
    settings.KRATOS_AAL = {
        **settings.KRATOS_AAL,
        "USER_FIELDS": {"email": "email", "first_name": "name.first"},
    }


def client_for(session: FakeSession | None = None) -> Client:
    client = Client()
    if session is not None:
        client.cookies.load(session.cookies)
    return client


def me(session: FakeSession | None) -> dict[str, Any]:
    return dict(client_for(session).get("/me/").json())


def query(url: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(url).query)


def test_user_created_on_first_sight(fake_kratos: FakeKratos, django_user_model: Any) -> None:
    session = fake_kratos.session("aal1")
    assert me(session) == {
        "authenticated": True,
        "username": session.identity.id,
        "email": session.identity.email,
    }
    user = django_user_model.objects.get(username=session.identity.id)
    assert user.kratos_identity.identity_id == session.identity.id
    assert not user.is_staff
    assert not user.is_superuser
    assert not user.has_usable_password()
    # The same identity, another session: the same user.
    me(fake_kratos.session("aal1", identity=session.identity))
    assert django_user_model.objects.count() == 1


# The async view's database work runs in another thread: outside the test's transaction.
@pytest.mark.django_db(transaction=True)
def test_async_view_sees_the_user(fake_kratos: FakeKratos) -> None:
    session = fake_kratos.session("aal1")
    client = AsyncClient()
    client.cookies.load(session.cookies)
    reply = asyncio.run(client.get("/ame/"))
    assert reply.json()["username"] == session.identity.id


def test_no_session_is_anonymous(fake_kratos: FakeKratos) -> None:
    assert me(None)["authenticated"] is False


def test_create_users_off_leaves_unknown_identities_anonymous(
    fake_kratos: FakeKratos, settings: Any, django_user_model: Any
) -> None:
    settings.KRATOS_AAL = {**settings.KRATOS_AAL, "CREATE_USERS": False}
    session = fake_kratos.session("aal1")
    assert me(session)["authenticated"] is False
    assert django_user_model.objects.count() == 0
    # An identity the app linked itself is known.
    user = django_user_model.objects.create_user("ann")
    KratosIdentityLink.objects.create(identity_id=session.identity.id, user=user)
    assert me(fake_kratos.session("aal1", identity=session.identity))["username"] == "ann"


def test_traits_sync_on_each_new_session_only(
    fake_kratos: FakeKratos, django_user_model: Any
) -> None:
    session = fake_kratos.session("aal1")
    identity = session.identity
    me(session)
    identity.email = "renamed@example.com"
    fake_kratos.clock.advance(31)  # whoami is asked again: the new traits are seen
    assert me(session)["email"] != "renamed@example.com"  # same session: not synced
    assert me(fake_kratos.session("aal1", identity=identity))["email"] == "renamed@example.com"


def test_app_edits_survive_a_request_in_the_same_session(
    fake_kratos: FakeKratos, django_user_model: Any
) -> None:
    session = fake_kratos.session("aal1")
    me(session)
    user = django_user_model.objects.get(username=session.identity.id)
    user.email = "kept@example.com"
    user.save()
    assert me(session)["email"] == "kept@example.com"


def test_trait_paths() -> None:
    traits = {"email": "a@b.c", "name": {"first": "Ann", "last": "Lee"}}
    assert _trait(traits, "name.first") == "Ann"
    assert _trait(traits, "email") == "a@b.c"
    assert _trait(traits, "name.middle") is None
    assert _trait(traits, "email.x") is None


@pytest.mark.parametrize("field", ["is_superuser", "is_staff", "password", "is_active"])
def test_user_fields_cannot_grant_privileges(field: str) -> None:
    raw = {"PUBLIC_URL": KRATOS, "USER_FIELDS": {field: "email"}}
    with pytest.raises(ConfigurationError, match=f"USER_FIELDS'\\]\\['{field}'\\]"):
        conf.read(raw)


@pytest.mark.parametrize(
    "value", [["email"], {"email": 1}, {"": "email"}, "email"], ids=["list", "int", "empty", "str"]
)
def test_user_fields_shape(value: Any) -> None:
    with pytest.raises(ConfigurationError, match="USER_FIELDS"):
        conf.read({"PUBLIC_URL": KRATOS, "USER_FIELDS": value})


def test_create_users_must_be_bool() -> None:
    with pytest.raises(ConfigurationError, match="CREATE_USERS"):
        conf.read({"PUBLIC_URL": KRATOS, "CREATE_USERS": "yes"})


def test_revoked_session_is_anonymous_next_request(fake_kratos: FakeKratos) -> None:
    session = fake_kratos.session("aal1")
    assert me(session)["authenticated"] is True
    fake_kratos.revoke(session)
    fake_kratos.clock.advance(31)
    assert me(session)["authenticated"] is False


def test_disabled_identity_cannot_act(fake_kratos: FakeKratos) -> None:
    session = fake_kratos.session("aal1")
    assert me(session)["authenticated"] is True
    fake_kratos.disable(session.identity)
    fake_kratos.clock.advance(31)
    assert me(session)["authenticated"] is False


def test_inactive_django_user_is_anonymous(fake_kratos: FakeKratos, django_user_model: Any) -> None:
    session = fake_kratos.session("aal1")
    me(session)
    django_user_model.objects.filter(username=session.identity.id).update(is_active=False)
    assert me(session)["authenticated"] is False


def test_django_login_through_the_backend_does_not_outlive_kratos(
    fake_kratos: FakeKratos, django_user_model: Any
) -> None:
    session = fake_kratos.session("aal1")
    me(session)
    user = django_user_model.objects.get(username=session.identity.id)
    client = Client()
    client.force_login(user, backend=BACKEND)
    # No Kratos cookie any more (logged out in Kratos): the Django login is dropped too.
    reply = client.get("/me/")
    assert reply.json()["authenticated"] is False
    assert SESSION_KEY not in client.session


def test_other_django_logins_stay(django_user_model: Any) -> None:
    user = django_user_model.objects.create_user("local", password="x")
    client = Client()
    client.force_login(user, backend="django.contrib.auth.backends.ModelBackend")
    assert client.get("/me/").json()["username"] == "local"
    assert client.session[BACKEND_SESSION_KEY] == "django.contrib.auth.backends.ModelBackend"
    assert HASH_SESSION_KEY in client.session


def test_kratos_down_is_503(fake_kratos: FakeKratos) -> None:
    session = fake_kratos.session("aal1")
    fake_kratos.fail("http_500", times=10)
    reply = client_for(session).get("/me/")
    assert reply.status_code == 503
    assert "Retry-After" in reply


# The async view's database work runs in another thread: outside the test's transaction.
@pytest.mark.django_db(transaction=True)
def test_kratos_down_is_503_async(fake_kratos: FakeKratos) -> None:
    session = fake_kratos.session("aal1")
    fake_kratos.fail("http_500", times=10)
    client = AsyncClient()
    client.cookies.load(session.cookies)
    reply = asyncio.run(client.get("/ame/"))
    assert reply.status_code == 503


# ------------------------------------------------------------------ login round trips


def test_login_required_goes_to_kratos_and_back(fake_kratos: FakeKratos) -> None:
    to_login = client_for().get("/private/")
    assert to_login.status_code == 302
    assert to_login["Location"].startswith("/kratos/login/?next=")
    to_kratos = client_for().get(to_login["Location"])
    assert to_kratos.status_code == 303
    assert to_kratos["Location"].startswith(f"{KRATOS}/self-service/login/browser?")
    assert query(to_kratos["Location"]) == {"return_to": ["http://testserver/private/"]}
    assert client_for(fake_kratos.session("aal1")).get("/private/").status_code == 200


def test_login_required_middleware_sends_to_kratos(fake_kratos: FakeKratos) -> None:
    reply = client_for().get("/plain/")
    assert reply.status_code == 302
    assert reply["Location"] == "/kratos/login/?next=/plain/"
    assert client_for(fake_kratos.session("aal1")).get("/plain/").status_code == 200


@pytest.mark.parametrize(
    "target",
    ["https://evil.example/", "//evil.example/x", "http://testserver@evil.example/"],
)
def test_login_never_returns_off_site(fake_kratos: FakeKratos, target: str) -> None:
    reply = client_for().get("/kratos/login/", {"next": target})
    assert query(reply["Location"]) == {"return_to": ["http://testserver/"]}


@pytest.mark.parametrize(
    ("target", "back"),
    [
        ("/a/b?c=1", "http://testserver/a/b?c=1"),
        ("http://testserver/x", "http://testserver/x"),
        ("//testserver/y", "http://testserver/y"),
        ("", "http://testserver/"),
    ],
)
def test_login_returns_on_site(fake_kratos: FakeKratos, target: str, back: str) -> None:
    reply = client_for().get("/kratos/login/", {"next": target})
    assert query(reply["Location"]) == {"return_to": [back]}


@pytest.mark.parametrize("host", ["bad host!", "-bad-"])
def test_login_bad_host_is_400(fake_kratos: FakeKratos, settings: Any, host: str) -> None:
    settings.ALLOWED_HOSTS = ["*"]
    reply = Client().get("/kratos/login/", HTTP_HOST=host)
    assert reply.status_code == 400
    assert "Location" not in reply


def test_admin_round_trip(fake_kratos: FakeKratos, django_user_model: Any) -> None:
    anonymous = client_for().get("/admin/")
    assert anonymous.status_code == 302
    to_kratos = client_for().get(anonymous["Location"])
    assert to_kratos.status_code == 303
    assert query(to_kratos["Location"]) == {"return_to": ["http://testserver/admin/"]}
    session = fake_kratos.session("aal2")
    # Signed in with Kratos, but not staff: the admin says no.
    assert client_for(session).get("/admin/").status_code == 302
    django_user_model.objects.filter(username=session.identity.id).update(is_staff=True)
    assert client_for(session).get("/admin/").status_code == 200
    # Revoked in Kratos: the admin is closed at the next request.
    fake_kratos.revoke(session)
    fake_kratos.clock.advance(31)
    assert client_for(session).get("/admin/").status_code == 302


def test_permission_required(fake_kratos: FakeKratos, django_user_model: Any) -> None:
    session = fake_kratos.session("aal1")
    assert client_for(session).get("/groups/").status_code == 403
    user = django_user_model.objects.get(username=session.identity.id)
    user.user_permissions.add(Permission.objects.get(codename="view_group"))
    assert client_for(session).get("/groups/").status_code == 200


def test_backend_ignores_other_credentials() -> None:
    assert KratosBackend().authenticate(None, username="x", password="y") is None


def test_checks_pass_with_linked_users() -> None:
    from kratos_aal.integrations.django.checks import (
        check_settings,
        check_user_fields,
        check_users,
    )

    assert check_users() == []
    assert check_settings() == []
    assert check_user_fields() == []


def test_check_user_middleware_order(settings: Any) -> None:
    from kratos_aal.integrations.django.checks import check_users

    settings.MIDDLEWARE = [USER_MIDDLEWARE, AUTH_MIDDLEWARE]
    assert [found.id for found in check_users()] == ["kratos_aal.E005"]
    settings.MIDDLEWARE = [USER_MIDDLEWARE]
    assert [found.id for found in check_users()] == ["kratos_aal.E005"]


def test_check_user_middleware_by_its_module_name(settings: Any) -> None:
    from kratos_aal.integrations.django.checks import check_users

    module = "kratos_aal.integrations.django.users.KratosUserMiddleware"
    settings.MIDDLEWARE = [module, AUTH_MIDDLEWARE]
    assert [found.id for found in check_users()] == ["kratos_aal.E005"]
    settings.MIDDLEWARE = [AUTH_MIDDLEWARE, module]
    assert check_users() == []


def test_check_backend_subclass_counts(settings: Any) -> None:
    from kratos_aal.integrations.django.checks import check_users

    settings.AUTHENTICATION_BACKENDS = ["tests.django.test_users.OwnBackend"]
    assert check_users() == []


def test_check_backend_missing(settings: Any) -> None:
    from kratos_aal.integrations.django.checks import check_users

    settings.AUTHENTICATION_BACKENDS = ["django.contrib.auth.backends.ModelBackend"]
    assert [found.id for found in check_users()] == ["kratos_aal.W003"]
    settings.MIDDLEWARE = [AUTH_MIDDLEWARE]
    assert check_users() == []


def test_check_names_bad_user_fields(settings: Any) -> None:
    from kratos_aal.integrations.django.checks import check_settings

    settings.KRATOS_AAL = {**settings.KRATOS_AAL, "USER_FIELDS": {"is_staff": "admin"}}
    assert [(found.id, "USER_FIELDS" in found.msg) for found in check_settings()] == [
        ("kratos_aal.E002", True)
    ]


def test_async_view_without_session_is_anonymous(fake_kratos: FakeKratos) -> None:
    assert asyncio.run(AsyncClient().get("/ame/")).json()["authenticated"] is False


def test_unlinked_identity_is_not_the_password_login(
    fake_kratos: FakeKratos, settings: Any, django_user_model: Any
) -> None:
    settings.KRATOS_AAL = {**settings.KRATOS_AAL, "CREATE_USERS": False}
    local = django_user_model.objects.create_user("local", password="x")
    session = fake_kratos.session("aal1")
    client = client_for(session)
    client.force_login(local, backend="django.contrib.auth.backends.ModelBackend")
    assert client.get("/me/").json()["authenticated"] is False
    # The password login is kept: without the Kratos session, Django's session says who.
    del client.cookies[session.cookie_name]
    assert client.get("/me/").json()["username"] == "local"


def test_a_username_equal_to_an_identity_id_is_not_taken_over(
    fake_kratos: FakeKratos, django_user_model: Any
) -> None:
    session = fake_kratos.session("aal1")
    django_user_model.objects.create_user(session.identity.id)
    assert me(session)["authenticated"] is False
    assert not KratosIdentityLink.objects.exists()


def test_withheld_aal1_session_is_no_user() -> None:
    from kratos_aal.integrations.django.conf import override_clients

    strict = FakeKratos(whoami_required_aal="highest_available")
    session = strict.session("aal1", totp=True)
    with strict.client() as client, override_clients(client, strict.async_client()):
        assert me(session)["authenticated"] is False


def test_backend_refuses_an_inactive_identity(fake_kratos: FakeKratos) -> None:
    from kratos_aal import Session

    handle = fake_kratos.session("aal1")
    fake_kratos.disable(handle.identity)
    session = Session.from_json(fake_kratos.session_json(handle))
    assert KratosBackend().authenticate(None, kratos_session=session) is None


def test_link_model(fake_kratos: FakeKratos, settings: Any) -> None:
    from kratos_aal.integrations.django.models import users_installed

    session = fake_kratos.session("aal1")
    me(session)
    assert session.identity.id in str(KratosIdentityLink.objects.get())
    assert users_installed() is True
    settings.AUTH_USER_MODEL = "nowhere.User"
    assert users_installed() is False


# ------------------------------------------------------------------ identity switch
# As RemoteUserMiddleware does when the header names someone else: a login made through
# KratosBackend is logged out when the request's Kratos session is another identity's.

OTHERS = ["unlinked", "deactivated", "another-user"]
# The path as AUTHENTICATION_BACKENDS lists it: what auth.authenticate() hands auth.login().
LISTED = "kratos_aal.integrations.django.KratosBackend"


def staff_and_other(
    fake_kratos: FakeKratos, settings: Any, django_user_model: Any, other: str
) -> tuple[Any, FakeSession]:
    """Return a staff user linked to one identity, and another identity's session."""
    staff_session = fake_kratos.session("aal2")
    me(staff_session)
    staff = django_user_model.objects.get(username=staff_session.identity.id)
    staff.is_staff = True
    staff.save()
    other_session = fake_kratos.session("aal2")
    if other == "deactivated":
        me(other_session)
        django_user_model.objects.filter(username=other_session.identity.id).update(is_active=False)
    elif other == "unlinked":
        settings.KRATOS_AAL = {**settings.KRATOS_AAL, "CREATE_USERS": False}
    return staff, other_session


def served_as(other: str, other_session: FakeSession) -> dict[str, Any]:
    if other == "another-user":
        return {"authenticated": True, "username": other_session.identity.id}
    return {"authenticated": False, "username": ""}


@pytest.mark.parametrize("other", OTHERS)
def test_another_identity_logs_the_backend_login_out(
    fake_kratos: FakeKratos, settings: Any, django_user_model: Any, other: str
) -> None:
    staff, other_session = staff_and_other(fake_kratos, settings, django_user_model, other)
    client = Client()
    client.force_login(staff, backend=LISTED)
    client.cookies.load(other_session.cookies)
    reply = client.get("/me/").json()
    assert {key: reply[key] for key in ("authenticated", "username")} == served_as(
        other, other_session
    )
    assert SESSION_KEY not in client.session
    # Logged out for good: the Django session no longer names the staff user.
    del client.cookies[other_session.cookie_name]
    assert client.get("/me/").json()["authenticated"] is False


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("other", OTHERS)
def test_another_identity_logs_the_backend_login_out_async(
    fake_kratos: FakeKratos, settings: Any, django_user_model: Any, other: str
) -> None:
    staff, other_session = staff_and_other(fake_kratos, settings, django_user_model, other)

    async def scenario() -> tuple[dict[str, Any], Any]:
        client = AsyncClient()
        await client.aforce_login(staff, backend=LISTED)
        client.cookies.load(other_session.cookies)
        reply = (await client.get("/ame/")).json()
        return reply, await client.asession()

    reply, django_session = asyncio.run(scenario())
    assert {key: reply[key] for key in ("authenticated", "username")} == served_as(
        other, other_session
    )
    assert SESSION_KEY not in django_session


def test_the_same_identity_keeps_the_backend_login(
    fake_kratos: FakeKratos, django_user_model: Any
) -> None:
    session = fake_kratos.session("aal1")
    me(session)
    user = django_user_model.objects.get(username=session.identity.id)
    client = client_for(session)
    client.force_login(user, backend=LISTED)
    assert client.get("/me/").json()["username"] == session.identity.id
    assert client.session[SESSION_KEY] == str(user.pk)


@pytest.mark.django_db(transaction=True)
def test_backend_login_does_not_outlive_kratos_async(
    fake_kratos: FakeKratos, django_user_model: Any
) -> None:
    session = fake_kratos.session("aal1")
    me(session)
    user = django_user_model.objects.get(username=session.identity.id)

    async def scenario() -> tuple[dict[str, Any], Any]:
        client = AsyncClient()
        await client.aforce_login(user, backend=LISTED)
        reply = (await client.get("/ame/")).json()
        return reply, await client.asession()

    reply, django_session = asyncio.run(scenario())
    assert reply["authenticated"] is False
    assert SESSION_KEY not in django_session


def test_a_subclass_of_the_backend_counts_as_kratos_login(
    fake_kratos: FakeKratos, settings: Any, django_user_model: Any
) -> None:
    settings.AUTHENTICATION_BACKENDS = ["tests.django.test_users.OwnBackend"]
    staff, other_session = staff_and_other(fake_kratos, settings, django_user_model, "unlinked")
    client = Client()
    client.force_login(staff, backend="tests.django.test_users.OwnBackend")
    client.cookies.load(other_session.cookies)
    assert client.get("/me/").json()["authenticated"] is False
    assert SESSION_KEY not in client.session


def test_a_login_by_a_backend_that_is_gone_is_left_to_django(
    fake_kratos: FakeKratos, settings: Any, django_user_model: Any
) -> None:
    staff, other_session = staff_and_other(fake_kratos, settings, django_user_model, "unlinked")
    client = Client()
    client.force_login(staff, backend="nowhere.Backend")
    client.cookies.load(other_session.cookies)
    # Django's get_user() makes a login by a backend it no longer lists anonymous.
    assert client.get("/me/").json()["authenticated"] is False


def test_a_link_made_meanwhile_is_used(fake_kratos: FakeKratos, django_user_model: Any) -> None:
    # Another request created the user and its link between this one's look and insert.
    session = fake_kratos.session("aal1")
    me(session)
    link = KratosBackend._create(session.identity.id)
    assert link is not None
    assert link.user.username == session.identity.id


def test_a_request_without_django_sessions_is_left_alone(fake_kratos: FakeKratos) -> None:
    from django.test import RequestFactory

    from kratos_aal.integrations.django.users import _resolve

    request = RequestFactory().get("/me/")
    assert _resolve(request) is None
    assert not hasattr(request, "user")


class OwnBackend(KratosBackend):
    """An app's own subclass of KratosBackend, refusing one more kind of user."""

    def user_can_authenticate(self, user: Any) -> bool:
        return bool(super().user_can_authenticate(user)) and user.last_name != "banned"


def test_the_apps_own_backend_decides(
    fake_kratos: FakeKratos, settings: Any, django_user_model: Any
) -> None:
    settings.AUTHENTICATION_BACKENDS = ["tests.django.test_users.OwnBackend"]
    session = fake_kratos.session("aal1")
    assert me(session)["authenticated"] is True
    django_user_model.objects.update(last_name="banned")
    assert me(session)["authenticated"] is False


@pytest.mark.django_db(transaction=True)
def test_the_apps_own_backend_decides_async(
    fake_kratos: FakeKratos, settings: Any, django_user_model: Any
) -> None:
    settings.AUTHENTICATION_BACKENDS = ["tests.django.test_users.OwnBackend"]
    session = fake_kratos.session("aal1")
    me(session)
    django_user_model.objects.update(last_name="banned")
    client = AsyncClient()
    client.cookies.load(session.cookies)
    assert asyncio.run(client.get("/ame/")).json()["authenticated"] is False


def test_a_backend_that_does_not_import_fails_at_start_up(settings: Any) -> None:
    from kratos_aal.integrations.django import KratosUserMiddleware
    from kratos_aal.integrations.django.checks import check_users

    settings.AUTHENTICATION_BACKENDS = ["nowhere.Backend"]
    with pytest.raises(ImportError, match="nowhere"):
        KratosUserMiddleware(lambda request: None)
    assert check_users() == []  # a check that raises would hide the others


PASSWORD = "django.contrib.auth.backends.ModelBackend"


@pytest.mark.parametrize("other", OTHERS)
def test_a_password_login_stays_beside_another_identity(
    fake_kratos: FakeKratos, settings: Any, django_user_model: Any, other: str
) -> None:
    # RemoteUserMiddleware logs out only what its own backend logged in; the request is the
    # Kratos session's all the same (its user, or anonymous when the app refuses it).
    staff, other_session = staff_and_other(fake_kratos, settings, django_user_model, other)
    client = Client()
    client.force_login(staff, backend=PASSWORD)
    client.cookies.load(other_session.cookies)
    reply = client.get("/me/").json()
    assert {key: reply[key] for key in ("authenticated", "username")} == served_as(
        other, other_session
    )
    assert client.session[SESSION_KEY] == str(staff.pk)


def admin_behind_aal2(
    fake_kratos: FakeKratos, settings: Any, django_user_model: Any, other: str
) -> tuple[Any, FakeSession]:
    """Return a superuser with a password, the admin behind aal2, another identity's session."""
    staff, other_session = staff_and_other(fake_kratos, settings, django_user_model, other)
    staff.is_superuser = True
    staff.set_password("staff password")
    staff.save()
    settings.KRATOS_AAL = {**settings.KRATOS_AAL, "RULES": {"/admin/*": "aal2"}}
    return staff, other_session


@pytest.mark.parametrize("other", ["unlinked", "deactivated"])
def test_a_password_never_borrows_another_identitys_second_factor(
    fake_kratos: FakeKratos, settings: Any, django_user_model: Any, other: str
) -> None:
    # The staff password alone, with the attacker's own aal2 session that the app refuses:
    # RULES judge that session, so request.user must not be the staff user.
    staff, other_session = admin_behind_aal2(fake_kratos, settings, django_user_model, other)
    client = Client()
    assert client.login(username=staff.username, password="staff password")
    assert client.get("/admin/").status_code == 303  # no Kratos session: step-up first
    client.cookies.load(other_session.cookies)
    assert client.get("/me/").json()["authenticated"] is False
    assert client.get("/admin/auth/user/").status_code == 302  # the admin's own login
    assert client.session[SESSION_KEY] == str(staff.pk)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("other", ["unlinked", "deactivated"])
def test_a_password_never_borrows_another_identitys_second_factor_async(
    fake_kratos: FakeKratos, settings: Any, django_user_model: Any, other: str
) -> None:
    staff, other_session = admin_behind_aal2(fake_kratos, settings, django_user_model, other)

    async def scenario() -> dict[str, Any]:
        client = AsyncClient()
        await client.aforce_login(staff, backend=PASSWORD)
        client.cookies.load(other_session.cookies)
        return dict((await client.get("/ame/")).json())

    assert asyncio.run(scenario())["authenticated"] is False


# ------------------------------------------------------------------ USER_FIELDS collisions


@pytest.fixture
def username_is_email(settings: Any) -> None:
    settings.KRATOS_AAL = {**settings.KRATOS_AAL, "USER_FIELDS": {"username": "email"}}


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.levelno >= logging.WARNING]


def assert_no_credential(caplog: pytest.LogCaptureFixture, session: FakeSession) -> None:
    for record in caplog.records:
        text = record.getMessage()
        assert session.token not in text
        assert session.cookie not in text


@pytest.mark.usefixtures("username_is_email")
def test_unique_field_collision_is_anonymous_with_one_warning(
    fake_kratos: FakeKratos, django_user_model: Any, caplog: pytest.LogCaptureFixture
) -> None:
    session = fake_kratos.session("aal1")
    django_user_model.objects.create_user(session.identity.email)  # someone else's username
    with caplog.at_level(logging.DEBUG, logger="kratos_aal"):
        for _ in range(3):
            reply = client_for(session).get("/me/")
            assert reply.status_code == 200
            assert reply.json()["authenticated"] is False
        # Pages that need a user send to login, as for anyone anonymous: no 500.
        assert client_for(session).get("/private/").status_code == 302
    [warning] = warnings_of(caplog)
    assert warning.levelno == logging.WARNING
    assert warning.name == "kratos_aal"
    assert "KRATOS_AAL['USER_FIELDS']['username']" in warning.getMessage()
    assert session.identity.id in warning.getMessage()
    assert_no_credential(caplog, session)
    # The colliding user was not touched; the identity's own user kept its old username.
    assert django_user_model.objects.filter(username=session.identity.email).count() == 1
    assert django_user_model.objects.filter(username=session.identity.id).count() == 1


@pytest.mark.usefixtures("username_is_email")
def test_collision_on_a_later_session_is_a_denial(
    fake_kratos: FakeKratos, django_user_model: Any, caplog: pytest.LogCaptureFixture
) -> None:
    first = fake_kratos.session("aal1")
    assert me(first)["username"] == first.identity.email
    django_user_model.objects.create_user("taken@example.com")
    first.identity.email = "taken@example.com"
    with caplog.at_level(logging.WARNING, logger="kratos_aal"):
        assert me(fake_kratos.session("aal1", identity=first.identity))["authenticated"] is False
    assert len(warnings_of(caplog)) == 1
    # Once the other user is gone, the next request signs in and takes the name.
    django_user_model.objects.filter(username="taken@example.com").delete()
    assert me(fake_kratos.session("aal1", identity=first.identity))["username"] == (
        "taken@example.com"
    )


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("username_is_email")
def test_collision_is_anonymous_in_async_views(
    fake_kratos: FakeKratos, django_user_model: Any, caplog: pytest.LogCaptureFixture
) -> None:
    session = fake_kratos.session("aal1")
    django_user_model.objects.create_user(session.identity.email)
    client = AsyncClient()
    client.cookies.load(session.cookies)
    with caplog.at_level(logging.WARNING, logger="kratos_aal"):
        reply = asyncio.run(client.get("/ame/"))
    assert reply.status_code == 200
    assert reply.json()["authenticated"] is False
    assert len(warnings_of(caplog)) == 1


@pytest.mark.usefixtures("username_is_email")
def test_collision_logs_the_backend_login_out(
    fake_kratos: FakeKratos, django_user_model: Any
) -> None:
    session = fake_kratos.session("aal1")
    me(session)
    user = django_user_model.objects.get(username=session.identity.email)
    django_user_model.objects.create_user("taken@example.com")
    session.identity.email = "taken@example.com"
    client = client_for(fake_kratos.session("aal1", identity=session.identity))
    client.force_login(user, backend="kratos_aal.integrations.django.KratosBackend")
    assert client.get("/me/").json()["authenticated"] is False
    assert SESSION_KEY not in client.session


def test_a_field_that_cannot_hold_the_trait_is_a_denial(
    fake_kratos: FakeKratos,
    django_user_model: Any,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from django.db import DataError

    session = fake_kratos.session("aal1")

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise DataError("value too long for type character varying(10)")

    me(session)  # created, and its fields copied
    monkeypatch.setattr(django_user_model, "save", refuse)
    session.identity.email = "new@example.com"
    with caplog.at_level(logging.WARNING, logger="kratos_aal"):
        assert me(fake_kratos.session("aal1", identity=session.identity))["authenticated"] is False
    [warning] = warnings_of(caplog)
    assert "KRATOS_AAL['USER_FIELDS']['email']" in warning.getMessage()


def test_an_unlinked_user_named_like_the_identity_is_one_warning(
    fake_kratos: FakeKratos, django_user_model: Any, caplog: pytest.LogCaptureFixture
) -> None:
    session = fake_kratos.session("aal1")
    django_user_model.objects.create_user(session.identity.id)
    with caplog.at_level(logging.WARNING, logger="kratos_aal"):
        assert me(session)["authenticated"] is False
        assert me(session)["authenticated"] is False
    [warning] = warnings_of(caplog)
    assert session.identity.id in warning.getMessage()
    assert "KratosIdentityLink" in warning.getMessage()


# ------------------------------------------------------------------ USER_FIELDS at start-up


@pytest.mark.parametrize(
    ("key", "why"),
    [
        pytest.param("is_staff ", "auth.User has no field 'is_staff '", id="trailing-space"),
        pytest.param("e_mail", "auth.User has no field 'e_mail'; did you mean 'email'?", id="typo"),
        pytest.param("is_authenticated", "auth.User has no field", id="a-property"),
        pytest.param("kratos_identity", "auth.User.kratos_identity is a relation", id="reverse"),
        pytest.param("logentry", "auth.User.logentry is a relation", id="reverse-fk"),
    ],
)
def test_user_fields_key_that_is_no_plain_field_is_a_startup_error(
    settings: Any, key: str, why: str
) -> None:
    from django.core.exceptions import ImproperlyConfigured

    from kratos_aal.integrations.django.checks import check_user_fields
    from kratos_aal.integrations.django.users import KratosUserMiddleware

    settings.KRATOS_AAL = {**settings.KRATOS_AAL, "USER_FIELDS": {"email": "email", key: "x"}}
    [error] = check_user_fields()
    assert error.id == "kratos_aal.E007"
    assert error in checks.run_checks(tags=["security"])  # registered: manage.py check runs it
    assert error.msg.startswith(f"KRATOS_AAL['USER_FIELDS'][{key!r}]: {why}")
    with pytest.raises(ImproperlyConfigured, match=re.escape(f"['USER_FIELDS'][{key!r}]")):
        KratosUserMiddleware(lambda request: None)


@pytest.mark.parametrize(
    "key",
    [
        *("is_staff", "is_superuser", "groups", "user_permissions", "password", "is_active"),
        *("last_login", "id", "pk", "date_joined"),
    ],
)
def test_user_fields_privilege_is_a_startup_error(settings: Any, key: str) -> None:
    from django.core.exceptions import ImproperlyConfigured

    from kratos_aal.integrations.django.checks import check_settings, check_user_fields
    from kratos_aal.integrations.django.users import KratosUserMiddleware

    settings.KRATOS_AAL = {**settings.KRATOS_AAL, "USER_FIELDS": {key: "email"}}
    [error] = check_settings()
    assert error.msg.startswith(f"KRATOS_AAL['USER_FIELDS'][{key!r}]: {key} is the app's")
    assert check_user_fields() == []  # reported once, by check_settings
    with pytest.raises(ImproperlyConfigured, match=re.escape(f"['USER_FIELDS'][{key!r}]")):
        KratosUserMiddleware(lambda request: None)


def test_user_fields_primary_key_of_the_model_is_refused(django_user_model: Any) -> None:
    from django.contrib.auth.models import Permission

    from kratos_aal.integrations.django.models import user_field_problems

    # A model whose primary key is not called id: refused by what it is, not by its name.
    pk = Permission._meta.pk.name
    assert user_field_problems(Permission, {pk: "x", "name": "y"}) == [
        f"KRATOS_AAL['USER_FIELDS'][{pk!r}]: {pk} is auth.Permission's primary key, "
        "the app's to set, never copied from traits"
    ]
    # Privilege names, whoever asks (the settings refuse them before this).
    assert user_field_problems(django_user_model, ["is_staff"]) == [
        "KRATOS_AAL['USER_FIELDS']['is_staff']: is_staff is the app's to set, never copied "
        "from traits"
    ]


def test_user_fields_wrong_at_run_time_names_the_key(
    fake_kratos: FakeKratos, settings: Any
) -> None:
    # Settings changed after start-up (or a backend used without the middleware): the
    # request fails naming the key, not with FieldDoesNotExist.
    from django.core.exceptions import ImproperlyConfigured

    from kratos_aal.integrations.django.users import user_for_session

    session = fake_kratos.session("aal1")
    settings.KRATOS_AAL = {**settings.KRATOS_AAL, "USER_FIELDS": {"is_staff ": "email"}}
    from kratos_aal import Session

    parsed = Session.from_json(fake_kratos.session_json(session))
    with pytest.raises(ImproperlyConfigured, match=re.escape("['USER_FIELDS']['is_staff ']")):
        user_for_session(None, parsed)


def test_user_fields_checks_pass_and_skip_without_users(settings: Any) -> None:
    from kratos_aal.integrations.django.checks import check_user_fields

    assert check_user_fields() == []
    settings.KRATOS_AAL = {**settings.KRATOS_AAL, "USER_FIELDS": {"nothing": "x"}}
    settings.AUTH_USER_MODEL = "nowhere.User"
    assert check_user_fields() == []  # no user model: no linked users to fill
    settings.KRATOS_AAL = {**settings.KRATOS_AAL, "USER_FIELDS": "email"}
    assert check_user_fields() == []  # not a dict: check_settings names it (E002)

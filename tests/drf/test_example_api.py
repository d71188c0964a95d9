"""The Django example's DRF API and its request.user page, as the example configures them.

In process with Django's clients (the example's own middleware and backends, on the test
database), and under a real server with raw request targets: no spelling of a path reaches
a DRF view of the example without the AAL it needs.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from django.test import Client
from rest_framework.test import APIClient

from kratos_aal._demo import Demo, run_demo
from kratos_aal.testing import FakeKratos, FakeSession
from tests.integrations.test_routing import raw_get

KRATOS = "http://127.0.0.1:4433"
HTML = {"HTTP_ACCEPT": "text/html,application/xhtml+xml,*/*;q=0.8"}
JSON = {"HTTP_ACCEPT": "application/json"}


@pytest.fixture
def example(settings: Any, db: None) -> None:
    """Serve with the example's own middleware, backends and login URL."""
    from examples.django_project.demo import settings as example_settings

    settings.MIDDLEWARE = example_settings.MIDDLEWARE
    settings.AUTHENTICATION_BACKENDS = example_settings.AUTHENTICATION_BACKENDS
    settings.LOGIN_URL = example_settings.LOGIN_URL


def api(session: FakeSession | None = None) -> APIClient:
    client = APIClient()
    if session is not None:
        client.cookies.load(session.cookies)
    return client


def query(url: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(url).query)


# ------------------------------------------------------------------------- in process


@pytest.mark.usefixtures("example")
def test_user_page_shows_the_linked_django_user(fake_kratos: FakeKratos) -> None:
    identity = fake_kratos.create_identity("dora@example.com")
    client = Client()
    client.cookies.load(fake_kratos.session("aal1", identity=identity).cookies)
    page = client.get("/user/", **HTML)
    assert page.status_code == 200
    text = page.content.decode()
    assert f"<th>Django user</th><td>{identity.id}</td>" in text
    assert "<td>dora@example.com</td>" in text  # USER_FIELDS copied the email trait
    assert "<th>staff (for the admin; the app decides)</th><td>no</td>" in text
    as_json = client.get("/user/", **JSON).json()
    assert as_json["user"] == {"username": identity.id, "email": "dora@example.com"}
    assert as_json["identity"] == identity.id and as_json["is_staff"] is False


@pytest.mark.usefixtures("example")
def test_user_page_sends_anonymous_people_to_kratos_login(fake_kratos: FakeKratos) -> None:
    wall = Client().get("/user/", **HTML)
    assert wall.status_code == 302 and wall["Location"] == "/login/?next=/user/"
    login = Client().get(wall["Location"], **HTML)
    assert login.status_code == 303
    assert login["Location"].startswith(f"{KRATOS}/self-service/login/browser?")
    assert query(login["Location"])["return_to"] == ["http://testserver/user/"]


@pytest.mark.usefixtures("example")
def test_api_index_lists_the_endpoints_to_anyone(fake_kratos: FakeKratos) -> None:
    """``/api/`` is the browsable API's front door, not a 404; it guards nothing itself."""
    index = api().get("/api/", **JSON)
    assert index.status_code == 200
    assert {name: entry["url"] for name, entry in index.json().items()} == {
        "me": "http://testserver/api/me/",
        "accounts": "http://testserver/api/accounts/",
        "payouts": "http://testserver/api/payouts/",
    }
    browsable = api().get("/api/", **HTML)
    assert browsable.status_code == 200
    assert b"http://testserver/api/accounts/" in browsable.content
    # The view's description reads as text: no reST markup shown literally.
    assert b"so that /api/ in a browser is not a 404" in browsable.content
    assert b"``" not in browsable.content
    # The endpoints it links to still need their AAL.
    assert api(fake_kratos.session("aal1")).get("/api/accounts/", **JSON).status_code == 403


@pytest.mark.usefixtures("example")
def test_api_me_is_the_linked_user_at_aal1(fake_kratos: FakeKratos) -> None:
    session = fake_kratos.session("aal1")
    reply = api(session).get("/api/me/", **JSON)
    assert reply.status_code == 200
    email = session.identity.email
    assert reply.json() == {"user": session.identity.id, "email": email, "aal": "aal1"}
    token = APIClient()
    token.credentials(HTTP_X_SESSION_TOKEN=session.token)
    assert token.get("/api/me/").json()["user"] == session.identity.id
    anonymous = api().get("/api/me/", **JSON)
    assert anonymous.status_code == 401
    assert anonymous.json()["error"]["id"] == "session_inactive"


@pytest.mark.usefixtures("example")
@pytest.mark.parametrize("path", ["/api/accounts/", "/api/accounts/1/"])
def test_accounts_need_aal2(fake_kratos: FakeKratos, path: str) -> None:
    aal1 = fake_kratos.session("aal1", totp=True)
    browsable = api(aal1).get(path, **HTML)
    assert browsable.status_code == 303
    assert query(browsable["Location"]) == {
        "aal": ["aal2"],
        "return_to": [f"http://testserver{path}"],
    }
    as_json = api(aal1).get(path, **JSON)
    assert as_json.status_code == 403
    assert as_json.json()["error"]["id"] == "session_aal2_required"
    allowed = api(fake_kratos.session("aal2")).get(path, **JSON)
    assert allowed.status_code == 200 and b"Checking" in allowed.content


@pytest.mark.usefixtures("example")
def test_unknown_account_is_404_only_at_aal2(fake_kratos: FakeKratos) -> None:
    assert (
        api(fake_kratos.session("aal1", totp=True)).get("/api/accounts/9/", **JSON).status_code
        == 403
    )
    assert api(fake_kratos.session("aal2")).get("/api/accounts/9/", **JSON).status_code == 404


@pytest.mark.usefixtures("example")
def test_payouts_need_a_recent_second_factor(fake_kratos: FakeKratos) -> None:
    old = api(fake_kratos.session("aal2", authenticated_at=301)).get("/api/payouts/", **JSON)
    assert old.status_code == 403 and old.json()["error"]["id"] == "session_refresh_required"
    fresh = fake_kratos.session("aal2", authenticated_at=299)
    assert api(fresh).get("/api/payouts/", **JSON).status_code == 200
    token = APIClient()
    token.credentials(HTTP_AUTHORIZATION=f"Bearer {fresh.token}")
    sent = token.post("/api/payouts/", {}, format="json")
    assert sent.status_code == 201 and sent.json()["sent"] is True


# ------------------------------------------------------------- under a real server

# Spellings a server passes through as sent; each reads as a DRF route of the example.
SPELLINGS = [
    "/api/accounts/",
    "//api/accounts/",
    "///api/accounts/",
    "/api//accounts/",
    "/api/./accounts/",
    "/x/../api/accounts/",
    "/%2fapi/accounts/",
    "/api/%2e/accounts/",
    "/api/accounts//1/",
    "/api/accounts/./1/",
    "//api/accounts/1/",
    "/api/accounts/1/../1/",
    "//api/payouts/",
    "/api//payouts/",
]


@pytest.fixture
def served(transactional_db: None) -> Iterator[Demo]:
    # The demo's server threads write linked users: a database emptied after each test.
    with run_demo("django", port=0, kratos_port=0) as demo:
        yield demo


@pytest.mark.parametrize("target", SPELLINGS)
def test_no_spelling_reaches_an_example_drf_view_without_aal2(served: Demo, target: str) -> None:
    aal1 = served.fake.session("aal1", totp=True)
    for headers in ({}, {"Cookie": aal1.cookie_header}, {"X-Session-Token": aal1.token}):
        for accept in ("text/html", "application/json"):
            status, body = raw_get(served.app_url, target, {**headers, "Accept": accept})
            assert status in {301, 303, 400, 401, 403, 404}, (target, headers, status)
            assert b"Checking" not in body and b"payouts" not in body, (target, status)


def test_the_battery_reaches_the_views_with_aal2(served: Demo) -> None:
    # The raw-socket way of calling does reach the views: with aal2 and a plain path, 200.
    aal2 = served.fake.session("aal2")
    status, body = raw_get(served.app_url, "/api/accounts/", {"X-Session-Token": aal2.token})
    assert status == 200 and b"Checking" in body
    status, body = raw_get(served.app_url, "/api/payouts/", {"X-Session-Token": aal2.token})
    assert status == 200 and b"payouts" in body


def test_django_home_says_it_could_not_check_when_kratos_is_down(fake_kratos: FakeKratos) -> None:
    # As on every example: the public page renders, claiming neither a user nor nobody.
    session = fake_kratos.session("aal1")
    fake_kratos.fail("status", status=502, times=None)
    client = Client()
    client.cookies.load(session.cookies)
    page = client.get("/", **HTML).content.decode()
    assert "Could not check who is signed in: Kratos did not answer." in page
    assert "Not signed in." not in page and "Sign out" not in page
    assert client.get("/", **JSON).json()["checked"] is False
    assert client.get("/account/", **HTML).status_code == 503  # protected: fails closed

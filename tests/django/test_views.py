"""Django: every SPEC §3 outcome through decorators, the mixin and RULES, sync and async."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from django.test import AsyncClient, Client

from kratos_aal.testing import FakeKratos, FakeSession

KRATOS = "http://127.0.0.1:4433"
HTML = {"HTTP_ACCEPT": "text/html,application/xhtml+xml,*/*;q=0.8"}
BROWSER = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
JSON = {"Accept": "application/json"}

# Each protected page of the example: how it is guarded, and whether its view is async.
PAGES = [
    pytest.param("/billing/", "aal2", id="decorator-sync"),
    pytest.param("/billing/async/", "aal2", id="decorator-async"),
    pytest.param("/transfer/", "aal2", id="mixin-sync"),
    pytest.param("/api/balance/", "aal2", id="require_aal"),
    pytest.param("/reports/q1/", "aal2", id="rules"),
]


def login(client: Client | AsyncClient, session: FakeSession | None) -> None:
    if session is not None:
        client.cookies.load(session.cookies)


def query(url: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(url).query)


async def get(
    client_kind: str, path: str, session: FakeSession | None, headers: dict[str, str] | None = None
) -> Any:
    """GET with Django's Client (in a worker thread, as WSGI would) or its AsyncClient."""
    headers = {**BROWSER, **(headers or {})}
    if client_kind == "sync":
        client = Client()
        login(client, session)
        return await asyncio.to_thread(client.get, path, headers=headers)
    aclient = AsyncClient()
    login(aclient, session)
    return await aclient.get(path, headers=headers)


@pytest.fixture(params=["sync", "async"])
def client_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.mark.parametrize(("path", "level"), PAGES)
async def test_allow(fake_kratos: FakeKratos, client_kind: str, path: str, level: str) -> None:
    reply = await get(client_kind, path, fake_kratos.session("aal2"))
    assert reply.status_code == 200


@pytest.mark.parametrize(("path", "level"), PAGES)
async def test_login(fake_kratos: FakeKratos, client_kind: str, path: str, level: str) -> None:
    reply = await get(client_kind, path, None)
    assert reply.status_code == 303
    assert reply["Location"].startswith(f"{KRATOS}/self-service/login/browser?")
    assert query(reply["Location"]) == {"return_to": [f"http://testserver{path}"]}
    assert fake_kratos.calls["/sessions/whoami"] == 0


@pytest.mark.parametrize(("path", "level"), PAGES)
async def test_step_up(fake_kratos: FakeKratos, client_kind: str, path: str, level: str) -> None:
    reply = await get(client_kind, path, fake_kratos.session("aal1", totp=True))
    assert reply.status_code == 303
    assert query(reply["Location"]) == {"aal": ["aal2"], "return_to": [f"http://testserver{path}"]}


@pytest.mark.parametrize(("path", "level"), PAGES)
async def test_enroll(fake_kratos: FakeKratos, client_kind: str, path: str, level: str) -> None:
    reply = await get(client_kind, path, fake_kratos.session("aal1"))
    assert reply.status_code == 303
    assert reply["Location"].startswith(f"{KRATOS}/self-service/settings/browser?")


@pytest.mark.parametrize(("path", "level"), PAGES)
async def test_unavailable(
    fake_kratos: FakeKratos, client_kind: str, path: str, level: str
) -> None:
    session = fake_kratos.session("aal2")
    fake_kratos.fail("reset", times=None)
    reply = await get(client_kind, path, session)
    assert reply.status_code == 503
    assert reply["Retry-After"] == "5"
    assert not reply.has_header("Location")


@pytest.mark.parametrize("path", ["/transfer/", "/reports/q1/"])
async def test_reauthenticate(fake_kratos: FakeKratos, client_kind: str, path: str) -> None:
    reply = await get(client_kind, path, fake_kratos.session("aal2", authenticated_at=601))
    assert reply.status_code == 303
    assert query(reply["Location"])["refresh"] == ["true"]


@pytest.mark.parametrize(
    ("state", "status", "error_id"),
    [
        ("none", 401, "session_inactive"),
        ("aal1+totp", 403, "session_aal2_required"),
        ("aal1", 403, "session_aal2_enrollment_required"),
        ("stale", 403, "session_refresh_required"),
    ],
)
async def test_json_envelopes(
    fake_kratos: FakeKratos, client_kind: str, state: str, status: int, error_id: str
) -> None:
    session = {
        "none": None,
        "aal1+totp": fake_kratos.session("aal1", totp=True),
        "aal1": fake_kratos.session("aal1"),
        "stale": fake_kratos.session("aal2", authenticated_at=900),
    }[state]
    reply = await get(client_kind, "/transfer/", session, JSON)
    assert reply.status_code == status
    body = reply.json()
    assert body["error"]["id"] == error_id
    assert query(body["redirect_browser_to"])["return_to"] == ["http://testserver/transfer/"]


def test_token_clients_get_json(fake_kratos: FakeKratos) -> None:
    session = fake_kratos.session("aal1", totp=True)
    reply = Client(**HTML).get("/api/balance/", HTTP_X_SESSION_TOKEN=session.token)
    assert reply.status_code == 403 and reply.json()["error"]["id"] == "session_aal2_required"
    ok = Client().get(
        "/api/balance/", HTTP_AUTHORIZATION=f"Bearer {fake_kratos.session('aal2').token}"
    )
    assert ok.json() == {"balance": 42, "aal": "aal2"}


def test_htmx(fake_kratos: FakeKratos) -> None:
    client = Client()
    login(client, fake_kratos.session("aal1", totp=True))
    reply = client.get(
        "/billing/", HTTP_HX_REQUEST="true", HTTP_HX_CURRENT_URL="http://testserver/"
    )
    assert reply.status_code == 403
    assert query(reply["HX-Redirect"])["return_to"] == ["http://testserver/"]


def test_post_is_not_run_and_returns_to_the_form(fake_kratos: FakeKratos) -> None:
    client = Client(enforce_csrf_checks=False, **HTML)
    login(client, fake_kratos.session("aal1", totp=True))
    reply = client.post("/transfer/", {"amount": "5"}, HTTP_REFERER="http://testserver/transfer/")
    assert reply.status_code == 303
    assert query(reply["Location"]) == {
        "aal": ["aal2"],
        "return_to": ["http://testserver/transfer/"],
    }
    login(client, fake_kratos.session("aal2"))
    assert client.post("/transfer/").content == b"Transfer sent"


def test_async_class_based_view(fake_kratos: FakeKratos) -> None:
    client = Client(**HTML)
    assert client.get("/statement/").status_code == 303
    login(client, fake_kratos.session("aal1"))
    assert client.get("/statement/").content == b"Statement (async class-based view)"


def test_lazy_session_costs_nothing_until_read(fake_kratos: FakeKratos) -> None:
    client = Client(**HTML)
    login(client, fake_kratos.session("aal2"))
    assert client.get("/django-only/", follow=False).status_code == 302  # Django's own login wall
    assert fake_kratos.calls["/sessions/whoami"] == 0
    assert b"Signed in at <b>aal2</b>" in client.get("/").content
    assert fake_kratos.calls["/sessions/whoami"] == 1


def test_public_page_without_session_reads_as_falsy(fake_kratos: FakeKratos) -> None:
    assert b"Not signed in" in Client().get("/").content


def test_public_page_when_kratos_is_down_is_503(fake_kratos: FakeKratos) -> None:
    client = Client(**HTML)
    login(client, fake_kratos.session("aal2"))
    fake_kratos.fail("status", status=502, times=None)
    # /me/ reads the session without catching KratosUnavailable (the home page catches it
    # and says it could not check): the middleware answers.
    reply = client.get("/me/")
    assert reply.status_code == 503 and reply["Retry-After"] == "5"


def test_login_required_middleware_stands_aside(fake_kratos: FakeKratos) -> None:
    # No Django user is logged in; Kratos alone decides these views.
    client = Client(**HTML)
    login(client, fake_kratos.session("aal2"))
    for path in ("/billing/", "/transfer/", "/api/balance/", "/account/"):
        assert client.get(path).status_code == 200, path


def test_functools_wraps_kept() -> None:
    from examples.django_project.demo import views

    assert views.billing.__name__ == "billing"
    assert views.billing_async.__doc__ is None and views.billing_async.__name__ == "billing_async"


def test_disallowed_host_is_400(fake_kratos: FakeKratos) -> None:
    reply = Client(**HTML).get("/billing/", HTTP_HOST="evil.example")
    assert reply.status_code == 400


async def test_async_view_uses_the_async_client_under_asgi(fake_kratos: FakeKratos) -> None:
    """The whoami call of an async view goes through the awaitable client, not a thread."""
    from django.core.handlers.asgi import ASGIHandler

    from kratos_aal.integrations.django import conf

    class NoBlockingCalls(httpx.BaseTransport):
        def handle_request(self, request: httpx.Request) -> httpx.Response:
            raise AssertionError("the blocking client was used")

    blocking = fake_kratos.client()
    blocking._http = httpx.Client(transport=NoBlockingCalls())
    with conf.override_clients(blocking, fake_kratos.async_client()):
        session = fake_kratos.session("aal2")
        transport = httpx.ASGITransport(app=ASGIHandler())
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            reply = await http.get("/billing/async/", headers={"Cookie": session.cookie_header})
            assert reply.status_code == 200
            assert reply.text == "Billing (async view), session at aal2"
            statement = await http.get("/statement/", headers={"Cookie": session.cookie_header})
            assert statement.status_code == 200
    assert fake_kratos.calls["/sessions/whoami"] == 1  # one call, cached for the second view


async def test_akratos_session_in_a_public_async_view(fake_kratos: FakeKratos) -> None:
    session = fake_kratos.session("aal1")
    client = AsyncClient()
    assert (await client.get("/me/")).json() == {"session": None}
    login(client, session)
    assert (await client.get("/me/")).json() == {"session": session.id}
    fake_kratos.revoke(session)
    fake_kratos.clock.advance(31)  # past CACHE_TTL
    assert (await client.get("/me/")).json() == {"session": None}


def test_withheld_session_reads_as_none(fake_kratos: FakeKratos) -> None:
    from kratos_aal.integrations.django.conf import override_clients

    strict = FakeKratos()  # whoami hides aal1 sessions of users with a second factor
    with override_clients(strict.client(), strict.async_client()):
        client = Client()
        login(client, strict.session("aal1", totp=True))
        assert b"Not signed in" in client.get("/").content
        async_client = AsyncClient()
        login(async_client, strict.session("aal1", totp=True))
        from asgiref.sync import async_to_sync

        assert async_to_sync(async_client.get)("/me/").json() == {"session": None}


@pytest.mark.parametrize("method", ["options", "get"])
def test_preflight_headers_earn_no_exemption(fake_kratos: FakeKratos, method: str) -> None:
    # The report view runs for any method: a forged preflight must not read it.
    reply = getattr(Client(**HTML), method)(
        "/reports/q1/",
        headers={"Origin": "http://spa.example", "Access-Control-Request-Method": "GET"},
    )
    assert reply.status_code == 303
    assert b"q1" not in reply.content


def test_hop_cookie_is_cleared_once_allowed(fake_kratos: FakeKratos) -> None:
    client = Client(**HTML)
    login(client, fake_kratos.session("aal2"))
    client.cookies["kratos_aal_hops"] = "abc.2.1"
    reply = client.get("/billing/")
    assert reply.status_code == 200
    assert reply.cookies["kratos_aal_hops"]["max-age"] == 0


def test_other_exceptions_are_not_swallowed(fake_kratos: FakeKratos) -> None:
    from django.http import HttpRequest

    from kratos_aal.integrations.django import KratosSessionMiddleware

    middleware = KratosSessionMiddleware(lambda request: None)
    assert middleware.process_exception(HttpRequest(), ValueError("boom")) is None

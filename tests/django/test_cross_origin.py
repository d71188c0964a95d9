"""Cross-origin requests on the cookie (SPEC §4a) on Django and DRF: every way to guard a view.

Django's test clients skip ``CsrfViewMiddleware``'s check, as DRF views always do: what
refuses here is kratos-aal's own check. Each case warms the cache with a GET first, so
that a refusal is shown to come before the cache-hit path too.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.test import AsyncClient, Client

from kratos_aal.testing import FakeKratos, FakeSession

from . import xorigin_urls

pytestmark = pytest.mark.urls("tests.django.xorigin_urls")

KRATOS_AAL = {
    "PUBLIC_URL": "http://127.0.0.1:4433",
    "RULES": {"/rule/*": "aal2", "/arule/*": "aal1", "/drf/rule/*": "aal2"},
}
HERE = "http://testserver"
SPA = "https://spa.example"
JSON = {"Accept": "application/json"}
CROSS = {"Sec-Fetch-Site": "cross-site", "Origin": "https://attacker.example"}

#: (path, whether the view is async)
VIEWS = [
    pytest.param(("/rule/", False), id="rules-sync"),
    pytest.param(("/arule/", True), id="rules-async"),
    pytest.param(("/deco/", False), id="decorator-sync"),
    pytest.param(("/adeco/", True), id="decorator-async"),
    pytest.param(("/mixin/", False), id="mixin-sync"),
    pytest.param(("/amixin/", True), id="mixin-async"),
    pytest.param(("/drf/session/", False), id="drf-session-authentication"),
    pytest.param(("/drf/none/", False), id="drf-no-authentication"),
    pytest.param(("/drf/require/", False), id="drf-require-aal"),
    pytest.param(("/drf/kratos/", False), id="drf-kratos-authentication"),
    pytest.param(("/drf/rule/", False), id="drf-rules-only"),
]


@pytest.fixture(autouse=True)
def kratos_settings(settings: Any) -> Callable[..., None]:
    settings.KRATOS_AAL = dict(KRATOS_AAL)
    xorigin_urls.RAN.clear()

    def change(**keys: Any) -> None:
        settings.KRATOS_AAL = {**KRATOS_AAL, **keys}

    return change


Send = Callable[..., Any]


@pytest.fixture(params=VIEWS)
def view(request: pytest.FixtureRequest, fake_kratos: FakeKratos) -> tuple[Send, FakeSession]:
    path, is_async = request.param
    session = fake_kratos.session("aal2")

    def send(method: str, headers: dict[str, str]) -> Any:
        # The cookie goes in the client's jar: AsyncClient sends that one, not a header's.
        client: Any = AsyncClient() if is_async else Client()
        headers = dict(headers)
        if headers.pop("Cookie", None) == session.cookie_header:
            client.cookies.load(session.cookies)
        if is_async:

            async def run() -> Any:
                return await client.generic(method, path, headers=headers)

            return async_to_sync(run)()
        return client.generic(method, path, headers=headers)

    warm = send("GET", {"Cookie": session.cookie_header, **JSON})
    assert warm.status_code == 200 and xorigin_urls.RAN == ["ran"]
    xorigin_urls.RAN.clear()
    return send, session


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
def test_a_cross_site_request_on_the_cookie_is_refused(
    view: tuple[Send, FakeSession],
    fake_kratos: FakeKratos,
    method: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    send, session = view
    calls = fake_kratos.calls["/sessions/whoami"]
    with caplog.at_level(logging.INFO, logger="kratos_aal.audit"):
        reply = send(method, {"Cookie": session.cookie_header, **CROSS, **JSON})
    assert reply.status_code == 403, reply.content
    assert reply.json()["error"]["id"] == "security_csrf_violation"
    assert xorigin_urls.RAN == []
    assert fake_kratos.calls["/sessions/whoami"] == calls  # refused before Kratos is asked
    records = [r for r in caplog.records if r.name == "kratos_aal.audit"]
    assert records and all(r.outcome == "cross_origin" for r in records)  # type: ignore[attr-defined]
    assert all(session.cookie not in str(r.__dict__) for r in records)


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({"Sec-Fetch-Site": "same-site", "Origin": "http://testserver:8001"}, id="sfs"),
        pytest.param({"Origin": "http://other.testserver"}, id="old-browser-origin"),
    ],
)
def test_a_form_from_another_origin_is_refused(
    view: tuple[Send, FakeSession], headers: dict[str, str]
) -> None:
    send, session = view
    reply = send("POST", {"Cookie": session.cookie_header, "Accept": "text/html", **headers})
    assert reply.status_code == 403 and xorigin_urls.RAN == []


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({"Sec-Fetch-Site": "same-origin", "Origin": HERE}, id="same-origin"),
        pytest.param({"Origin": HERE}, id="old-browser-same-origin"),
        pytest.param({}, id="not-a-browser"),
    ],
)
def test_a_same_origin_request_runs(
    view: tuple[Send, FakeSession], headers: dict[str, str]
) -> None:
    send, session = view
    reply = send("POST", {"Cookie": session.cookie_header, **JSON, **headers})
    assert reply.status_code == 200, reply.content
    assert xorigin_urls.RAN == ["ran"]


def test_a_trusted_origin_runs(
    view: tuple[Send, FakeSession], kratos_settings: Callable[..., None]
) -> None:
    send, session = view
    kratos_settings(TRUSTED_ORIGINS=[SPA])
    headers = {"Cookie": session.cookie_header, "Sec-Fetch-Site": "cross-site", **JSON}
    assert send("POST", {**headers, "Origin": SPA}).status_code == 200
    assert send("POST", {**headers, "Origin": "https://evil.example"}).status_code == 403
    assert xorigin_urls.RAN == ["ran"]


def test_csrf_trusted_origins_is_the_default(view: tuple[Send, FakeSession], settings: Any) -> None:
    send, session = view
    settings.CSRF_TRUSTED_ORIGINS = ["https://*.example.org", "https://spa.example/with/path"]
    headers = {"Cookie": session.cookie_header, "Sec-Fetch-Site": "cross-site", **JSON}
    assert send("POST", {**headers, "Origin": "https://app.example.org"}).status_code == 200
    assert send("POST", {**headers, "Origin": "https://spa.example"}).status_code == 403
    assert xorigin_urls.RAN == ["ran"]


def test_a_token_client_is_untouched(view: tuple[Send, FakeSession]) -> None:
    send, session = view
    reply = send("POST", {"X-Session-Token": session.token, **CROSS, **JSON})
    assert reply.status_code == 200 and xorigin_urls.RAN == ["ran"]


def test_a_cross_site_get_is_untouched(view: tuple[Send, FakeSession]) -> None:
    send, session = view
    reply = send("GET", {"Cookie": session.cookie_header, **CROSS})
    assert reply.status_code == 200 and xorigin_urls.RAN == ["ran"]


def test_protection_off_lets_it_run(
    view: tuple[Send, FakeSession], kratos_settings: Callable[..., None]
) -> None:
    send, session = view
    kratos_settings(CROSS_ORIGIN_PROTECTION=False)
    reply = send("POST", {"Cookie": session.cookie_header, **CROSS, **JSON})
    assert reply.status_code == 200 and xorigin_urls.RAN == ["ran"]


def test_without_a_session_the_answer_is_login_as_before(view: tuple[Send, FakeSession]) -> None:
    send, _ = view
    reply = send("POST", {**CROSS, **JSON})
    assert reply.status_code in (401, 403) and xorigin_urls.RAN == []
    if reply.status_code == 403:  # DRF's own answer for a view without authentication
        assert reply.json()["error"]["id"] != "security_csrf_violation"
    else:
        assert reply.json()["error"]["id"] == "session_inactive"


def test_a_csrf_trusted_origin_with_no_domain_is_not_trusted(
    view: tuple[Send, FakeSession], settings: Any
) -> None:
    send, session = view
    settings.CSRF_TRUSTED_ORIGINS = ["https://*."]  # e.g. f"https://*.{DOMAIN}", DOMAIN empty
    headers = {"Cookie": session.cookie_header, "Sec-Fetch-Site": "cross-site", **JSON}
    assert send("POST", {**headers, "Origin": "https://attacker.example."}).status_code == 403
    assert xorigin_urls.RAN == []


def test_a_bad_trusted_origin_fails_the_system_check(settings: Any) -> None:
    from kratos_aal.integrations.django.checks import check_settings

    settings.KRATOS_AAL = {**KRATOS_AAL, "TRUSTED_ORIGINS": ["spa.example"]}
    [error] = check_settings()
    assert error.id == "kratos_aal.E002" and "KRATOS_AAL['TRUSTED_ORIGINS']" in error.msg


#: A WebSocket handshake as a WSGI server that upgrades in the view hands it to Django
#: (uWSGI's websocket_handshake(), gevent-websocket): a GET with Upgrade: websocket.
HANDSHAKE = {
    "Upgrade": "websocket",
    "Connection": "Upgrade",
    "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
    "Sec-WebSocket-Version": "13",
}


@pytest.mark.parametrize("origin", ["https://attacker.example", "null", "http://testserver:8001"])
def test_a_websocket_handshake_from_a_foreign_origin_is_refused(
    view: tuple[Send, FakeSession], fake_kratos: FakeKratos, origin: str
) -> None:
    send, session = view
    calls = fake_kratos.calls["/sessions/whoami"]
    reply = send("GET", {"Cookie": session.cookie_header, "Origin": origin, **HANDSHAKE, **JSON})
    assert reply.status_code == 403, reply.content
    assert reply.json()["error"]["id"] == "security_csrf_violation"
    assert xorigin_urls.RAN == [] and fake_kratos.calls["/sessions/whoami"] == calls


def test_a_websocket_handshake_from_this_origin_or_with_a_token_runs(
    view: tuple[Send, FakeSession],
) -> None:
    send, session = view
    cookie = {"Cookie": session.cookie_header, **HANDSHAKE}
    assert send("GET", {**cookie, "Origin": HERE}).status_code == 200
    assert send("GET", cookie).status_code == 200  # no Origin: not a browser
    token = {"X-Session-Token": session.token, "Origin": "https://attacker.example"}
    assert send("GET", {**token, **HANDSHAKE}).status_code == 200
    assert xorigin_urls.RAN == ["ran"] * 3

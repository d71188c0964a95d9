"""Django: every spelling of a protected path, forged preflights, and django-cors-headers."""

from __future__ import annotations

from io import BytesIO
from typing import Any
from urllib.parse import unquote_to_bytes
from wsgiref.util import setup_testing_defaults

import pytest
from django.core.handlers.wsgi import WSGIHandler
from django.test import Client
from django.urls import set_script_prefix

from kratos_aal.integrations.django.checks import MIDDLEWARE, check_settings
from kratos_aal.testing import FakeKratos

SettingsWrapper = Any
CORS = "corsheaders.middleware.CorsMiddleware"
SPA = "http://spa.example"
HTML = "text/html,application/xhtml+xml,*/*;q=0.8"

# Each reaches the report view (rule "/reports/*") in some reading of the path.
BATTERY = [
    "/reports/q1/",
    "//reports/q1/",
    "///reports/q1/",
    "/reports//q1/",
    "/./reports/q1/",
    "/reports/../reports/q1/",
    "/%2freports/q1/",
    "/reports/%2e%2e/reports/q1/",
    "/x/../reports/q1/",
]


def wsgi(path_info: str, script_name: str = "", **extra: str) -> tuple[str, bytes]:
    """Call Django's WSGI handler with PATH_INFO as a server would pass it (decoded)."""
    environ: dict[str, Any] = {
        "PATH_INFO": unquote_to_bytes(path_info).decode("latin-1"),
        "SCRIPT_NAME": script_name,
        "HTTP_ACCEPT": HTML,
        "SERVER_NAME": "testserver",
        "HTTP_HOST": "testserver",
        "wsgi.input": BytesIO(),
        **extra,
    }
    setup_testing_defaults(environ)
    statuses: list[str] = []

    def start_response(status: str, headers: list[tuple[str, str]], *exc: Any) -> Any:
        statuses.append(status)
        return lambda data: None

    try:
        body = b"".join(WSGIHandler()(environ, start_response))
    finally:
        # The handler sets Django's script prefix for the thread; later tests expect "/".
        set_script_prefix("/")
    return statuses[0], body


@pytest.mark.parametrize("script_name", ["", "/app"])
@pytest.mark.parametrize("path", BATTERY)
@pytest.mark.django_db  # the handler's request_finished signal closes old DB connections
def test_raw_path_info_battery(fake_kratos: FakeKratos, script_name: str, path: str) -> None:
    status, body = wsgi(path, script_name)
    assert status.startswith("303"), (path, status)
    assert b"Report" not in body
    preflight, body = wsgi(
        path,
        script_name,
        REQUEST_METHOD="OPTIONS",
        HTTP_ORIGIN=SPA,
        HTTP_ACCESS_CONTROL_REQUEST_METHOD="GET",
    )
    assert preflight.startswith("303") and b"Report" not in body


@pytest.mark.parametrize("path", [p for p in BATTERY if not p.startswith("//")])
def test_test_client_battery(fake_kratos: FakeKratos, path: str) -> None:
    # The test Client reads "//x" as a host name, hence the raw WSGI test above.
    reply = Client(HTTP_ACCEPT=HTML).get(path)
    assert reply.status_code == 303
    assert b"Report" not in reply.content


@pytest.mark.django_db
def test_session_reaches_the_report_by_any_spelling(fake_kratos: FakeKratos) -> None:
    cookie = fake_kratos.session("aal2").cookie_header
    status, body = wsgi("/reports/q1/", HTTP_COOKIE=cookie)
    assert status.startswith("200") and body == b"Report q1"
    status, _ = wsgi("//reports/q1/", HTTP_COOKIE=cookie)
    assert not status.startswith("303")  # Django itself does not route it: 404, not a denial


# ------------------------------------------------------------------ django-cors-headers


def with_cors(settings: SettingsWrapper, *, outside: bool) -> None:
    middleware = [m for m in settings.MIDDLEWARE if m != CORS]
    index = middleware.index(MIDDLEWARE) + (0 if outside else 1)
    middleware.insert(index, CORS)
    settings.MIDDLEWARE = middleware
    settings.CORS_ALLOWED_ORIGINS = [SPA]
    settings.CORS_ALLOW_CREDENTIALS = True


def test_check_warns_when_cors_is_below(settings: SettingsWrapper) -> None:
    with_cors(settings, outside=False)
    found = check_settings()
    assert [f.id for f in found] == ["kratos_aal.W002"]
    assert CORS in found[0].hint


@pytest.mark.parametrize("top", [True, False])
def test_check_is_quiet_when_cors_is_above(settings: SettingsWrapper, top: bool) -> None:
    with_cors(settings, outside=True)
    if top:
        settings.MIDDLEWARE = [CORS, *[m for m in settings.MIDDLEWARE if m != CORS]]
    assert check_settings() == []


def test_check_is_quiet_without_kratos_middleware(settings: SettingsWrapper) -> None:
    settings.MIDDLEWARE = [m for m in settings.MIDDLEWARE if m != MIDDLEWARE] + [CORS]
    settings.KRATOS_AAL = {k: v for k, v in settings.KRATOS_AAL.items() if k != "RULES"}
    assert check_settings() == []


def test_spa_preflight_succeeds_with_cors_outside(
    settings: SettingsWrapper, fake_kratos: FakeKratos
) -> None:
    with_cors(settings, outside=True)
    client = Client()
    reply = client.options(
        "/reports/q1/", headers={"Origin": SPA, "Access-Control-Request-Method": "GET"}
    )
    assert reply.status_code == 200
    assert reply.headers["access-control-allow-origin"] == SPA
    assert b"Report" not in reply.content
    assert fake_kratos.calls["/sessions/whoami"] == 0
    cookie = fake_kratos.session("aal2").cookie_header
    actual = client.get("/reports/q1/", headers={"Origin": SPA, "Cookie": cookie})
    assert (actual.status_code, actual.content) == (200, b"Report q1")
    assert actual.headers["access-control-allow-origin"] == SPA


@pytest.mark.parametrize("outside", [True, False], ids=["cors-outside", "cors-inside"])
@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": SPA, "Access-Control-Request-Method": "GET"},
        {"Access-Control-Request-Method": "GET"},
        {"Origin": "http://evil.example", "Access-Control-Request-Method": "GET"},
    ],
)
def test_forged_preflight_reaches_no_view(
    settings: SettingsWrapper, fake_kratos: FakeKratos, outside: bool, headers: dict[str, str]
) -> None:
    with_cors(settings, outside=outside)
    reply = Client(HTTP_ACCEPT=HTML).options("/reports/q1/", headers=headers)
    assert b"Report" not in reply.content
    if not outside:
        assert reply.status_code == 303  # kratos-aal answers first: denied like any request
    get = Client(HTTP_ACCEPT=HTML).get("/reports/q1/", headers=headers)
    assert get.status_code == 303 and b"Report" not in get.content


# ------------------------------------------------ an exact rule and its trailing slash


@pytest.mark.parametrize(
    ("path", "protected"),
    [("/slash/", True), ("/bare", True), ("/slashy/", False), ("/barely", False)],
)
@pytest.mark.django_db
def test_an_exact_rule_covers_the_trailing_slash_twin(
    settings: SettingsWrapper, fake_kratos: FakeKratos, path: str, protected: bool
) -> None:
    # Issue 21 item 10: rule "/slash" and a view at "slash/": GET /slash/ ran the view with
    # no session, as APPEND_SLASH only redirected "/slash" there.
    settings.ROOT_URLCONF = "tests.django.trailing_urls"
    settings.KRATOS_AAL = {
        "PUBLIC_URL": fake_kratos.public_url,
        "RULES": {"/slash": "aal1", "/bare/": "aal1"},
    }
    response = Client(HTTP_ACCEPT=HTML).get(path)
    if not protected:
        assert response.content == f"SECRET {path}".encode()
        return
    assert response.status_code == 303, (path, response.status_code)
    assert b"SECRET" not in response.content
    signed_in = Client(HTTP_COOKIE=fake_kratos.session("aal1").cookie_header)
    assert signed_in.get(path).content == f"SECRET {path}".encode()
    status, body = wsgi(path)
    assert status.startswith("303") and b"SECRET" not in body

"""Edge paths that users meet rarely: each with the behaviour it must keep."""

from __future__ import annotations

import io
from datetime import datetime, timezone
from typing import Any

import httpx
import pytest

from kratos_aal import ConfigurationError, Credentials, KratosConfig, Session
from kratos_aal._cache import TTLCache
from kratos_aal._cached_session import allowed_from_cache
from kratos_aal._cli_doctor import _Doctor
from kratos_aal._cli_whoami import describe_session
from kratos_aal._decision import Requirement
from kratos_aal._kratos_api import whoami_request
from kratos_aal.integrations._asgi import _web_request
from kratos_aal.integrations.starlette import KratosUser
from kratos_aal.testing import FakeKratos

NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)


def session(**identity: Any) -> Session:
    body: dict[str, Any] = {"id": "s", "active": True, "authenticator_assurance_level": "aal1"}
    if identity:
        body["identity"] = {"id": "i-1", **identity}
    return Session.from_json(body)


def test_kratos_user_names() -> None:
    assert KratosUser(session(traits={"email": "a@example.com"})).display_name == "a@example.com"
    assert KratosUser(session(traits={"username": "ada"})).display_name == "ada"
    assert KratosUser(session(traits={"name": {"first": "Ada"}})).display_name == "i-1"
    anonymous = KratosUser(session())
    assert (anonymous.display_name, anonymous.identity, anonymous.is_authenticated) == (
        "",
        "",
        True,
    )


def test_asgi_request_reading() -> None:
    scope = {
        "type": "websocket",
        "scheme": "wss",
        "path": "/live feed",
        "root_path": "/app",
        "query_string": b"a=1",
        "server": ("10.0.0.5", 8443),
        "headers": [
            (b"accept", b"text/html"),
            (b"accept", b"application/json"),
            (b"cookie", b"a=1"),
            (b"cookie", b"b=2"),
        ],
    }
    web = _web_request(scope)
    assert web.scheme == "https"  # wss reads as https for return_to
    assert web.host == "10.0.0.5:8443"  # no Host header: the server's address
    assert web.path == "/app/live%20feed"
    assert web.header("accept") == "text/html, application/json"
    assert web.header("cookie") == "a=1; b=2"
    assert _web_request({"type": "http", "path": "/", "server": None, "headers": []}).host is None


def test_headers_with_the_length_of_a_credential_header_are_skipped() -> None:
    # "X-Forwarded-Proto" has the length of none; "Accept-Charset" is 14; "If-None-Match" is 13.
    pairs = [
        ("If-None-Match", "x"),
        ("Authorization", "Bearer ory_st_one"),
        ("authorization", "Bearer ory_st_two"),
    ]
    assert Credentials.from_headers(pairs).token == "ory_st_one"  # the first Authorization wins


def test_token_requests_never_carry_a_cookie() -> None:
    config = KratosConfig(public_url="http://k")
    assert "Cookie" not in whoami_request(config, Credentials(token="ory_st_x")).headers
    assert "X-Session-Token" not in whoami_request(config, Credentials(cookie="c")).headers
    assert "Cookie" not in whoami_request(config, Credentials()).headers


def test_cached_non_sessions_never_allow() -> None:
    config = KratosConfig(public_url="http://k")
    assert allowed_from_cache(config, object(), Requirement("aal1"), NOW) is None


def test_ttl_cache_len_drops_expired_entries() -> None:
    now = [0.0]
    cache = TTLCache(10, lambda: now[0])
    cache.put("a", 1, 5)
    cache.put("b", 2, 50)
    now[0] = 10
    assert len(cache) == 1


def test_app_url_must_be_an_origin() -> None:
    with pytest.raises(ConfigurationError, match="app_url must not carry a path"):
        KratosConfig(public_url="http://k", app_url="https://shop.example/app")


def test_describe_session_without_identity_or_methods() -> None:
    lines = describe_session(Session.from_json({"id": "s", "active": True}), NOW)
    assert "Identity    (not shown)" in lines
    assert lines[-1] == "  (none)"
    assert "Expires     unknown" in lines


def test_describe_session_with_provider_and_old_methods() -> None:
    body = {
        "id": "s",
        "active": True,
        "expires_at": "2026-01-02T03:00:00Z",
        "authentication_methods": [
            {
                "method": "oidc",
                "aal": "aal1",
                "provider": "github",
                "completed_at": "2025-12-31T22:30:00Z",
            }
        ],
    }
    text = "\n".join(describe_session(Session.from_json(body), NOW))
    assert "via github" in text and "(1 h 30 min ago)" in text and "(in 27 h 0 min)" in text


class _Args:
    def __init__(self, url: str) -> None:
        self.url, self.browser_url, self.timeout = url, None, 2.0
        self.cookie = self.token = None
        self.cookie_name = "ory_kratos_session"


def _doctor_against(handler: Any) -> tuple[int, str]:
    out = io.StringIO()
    doctor = _Doctor(_Args("http://kratos.test"), out)  # type: ignore[arg-type]
    doctor.http = httpx.Client(transport=httpx.MockTransport(handler))
    return doctor.run(), out.getvalue()


def test_doctor_on_something_that_is_not_kratos() -> None:
    status, text = _doctor_against(lambda request: httpx.Response(404, text="not found"))
    assert status == 1
    assert "/health/alive answered 404" in text
    assert "whoami without a session answered 404, not 401" in text
    assert "could not create a login flow (answered 404)" in text
    assert "aal=aal2 without a session answered 404" in text


def test_doctor_explains_errors_it_meets() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/self-service/login/browser":
            return httpx.Response(
                400, json={"error": {"id": "self_service_flow_return_to_forbidden"}}
            )
        return httpx.Response(200, json={})

    status, text = _doctor_against(handler)
    assert status == 1
    assert "self_service_flow_return_to_forbidden: return_to is not in" in text


def test_django_clients_are_made_once_and_share_a_cache(settings: Any) -> None:
    from kratos_aal.integrations.django import conf

    settings.KRATOS_AAL = {"PUBLIC_URL": "http://kratos:4433"}
    sync_client, async_client = conf.clients()
    assert conf.clients() == (sync_client, async_client)
    assert async_client._cache is sync_client._cache
    assert sync_client.config.public_url == "http://kratos:4433"


def test_django_decorator_forms(fake_kratos: FakeKratos) -> None:
    from django.http import HttpResponse
    from django.test import RequestFactory

    from kratos_aal.integrations.django import require_aal, require_aal2

    def view(request: Any) -> HttpResponse:
        return HttpResponse("ok")

    forms = [
        require_aal(view),
        require_aal("aal1")(view),
        require_aal2(view),
        require_aal2(max_age=60)(view),
    ]
    request = RequestFactory().get("/x", HTTP_COOKIE=fake_kratos.session("aal2").cookie_header)
    assert [form(request).status_code for form in forms] == [200, 200, 200, 200]
    assert all(form.login_required is False for form in forms)  # type: ignore[attr-defined]
    bare = RequestFactory().get("/x")
    assert [form(bare).status_code for form in forms] == [303, 303, 303, 303]

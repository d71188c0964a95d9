"""What only the WSGI adapter does: environ, start_response, any WSGI app."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from kratos_aal import AsyncKratosClient, ConfigurationError
from kratos_aal.integrations.wsgi import ENVIRON_KEY, KratosAALWSGIMiddleware
from kratos_aal.testing import FakeKratos

RAN: list[str] = []


def plain_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    RAN.append(environ["REQUEST_METHOD"])
    session = environ.get(ENVIRON_KEY)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [session.aal.value.encode() if session else b"public"]


def client_for(fake: FakeKratos, **kwargs: Any) -> httpx.Client:
    app = KratosAALWSGIMiddleware(plain_app, client=fake.client(**kwargs), rules={"/pay/*": "aal2"})
    return httpx.Client(transport=httpx.WSGITransport(app=app), base_url="http://testserver")


def test_plain_wsgi_app(fake: FakeKratos) -> None:
    RAN.clear()
    with client_for(fake) as http:
        assert http.get("/").text == "public"
        assert (
            http.get("/pay", headers={"Cookie": fake.session("aal2").cookie_header}).text == "aal2"
        )
        aal1 = fake.session("aal1", totp=True)
        denied = http.post(
            "/pay/now", headers={"Cookie": aal1.cookie_header, "Referer": "http://testserver/pay"}
        )
        assert denied.status_code == 303
        assert denied.headers["Content-Length"] == "0"
        assert "return_to=http%3A%2F%2Ftestserver%2Fpay" in denied.headers["Location"]
    assert RAN == ["GET", "GET"]  # the POST never reached the app


def test_script_name_is_part_of_return_to(fake: FakeKratos) -> None:
    app = KratosAALWSGIMiddleware(plain_app, client=fake.client(), rules={"/pay": "aal2"})
    transport = httpx.WSGITransport(app=app, script_name="/shop")
    with httpx.Client(transport=transport, base_url="http://testserver") as http:
        reply = http.get("/pay")
        assert "return_to=http%3A%2F%2Ftestserver%2Fshop%2Fpay" in reply.headers["Location"]


def test_configuration_errors(fake: FakeKratos) -> None:
    with pytest.raises(ConfigurationError, match="config= or client="):
        KratosAALWSGIMiddleware(plain_app)
    with pytest.raises(ConfigurationError, match="KratosClient"):
        KratosAALWSGIMiddleware(plain_app, client=AsyncKratosClient(fake.config()))  # type: ignore[arg-type]
    made = KratosAALWSGIMiddleware(plain_app, config=fake.config(), rules={"/a/*": "aal1"})
    assert made.rules.match("/a") is not None


def test_a_bad_host_is_a_clean_400(fake: FakeKratos) -> None:
    with client_for(fake) as http:
        reply = http.get("/pay", headers={"Host": "bad host"})
    assert reply.status_code == 400
    assert reply.headers["content-type"].startswith("text/plain")
    assert "the Host header is not a valid host" in reply.text
    assert reply.headers["content-length"] == str(len(reply.content))

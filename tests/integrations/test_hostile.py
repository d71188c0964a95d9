"""Hostile requests get a clean answer: never a 500, never a redirect off browser_url or the app."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from kratos_aal.testing import FakeKratos

from .conftest import Harness

KRATOS = "http://127.0.0.1:4433/self-service/"


def assert_clean(reply: Any, origin: str = "http://testserver") -> None:
    assert reply.status < 500, reply.body[:200]
    for name, value in reply.headers.multi_items():
        assert "\r" not in value and "\n" not in value, name
        assert "evil=1" not in value or name.lower() == "location"
    location = reply.headers.get("location")
    if location:
        assert location.startswith(KRATOS)
        back = parse_qs(urlsplit(location).query).get("return_to", [origin + "/"])[0]
        parts = urlsplit(back)
        assert f"{parts.scheme}://{parts.netloc}" == origin
        assert back.isascii() and not any(c in back for c in '\r\n <>"')


HOSTILE_GETS = [
    pytest.param("/billing", {"Cookie": "ory_kratos_session=" + "a" * 8192}, id="8kb-cookie"),
    pytest.param("/billing", {"Cookie": 'ory_kratos_session="unterminated'}, id="broken-quote"),
    pytest.param("/billing", {"Cookie": ";;;==;ory_kratos_session"}, id="cookie-garbage"),
    pytest.param("/billing", {"Authorization": "Bearer " + "x" * 9000}, id="huge-bearer"),
    pytest.param("/billing", {"X-Session-Token": "\x7f\x01token"}, id="control-token"),
    pytest.param("/account/%0d%0aSet-Cookie:%20evil=1", {}, id="crlf-in-path"),
    pytest.param("/account/%E2%82%AC/%FF%FE", {}, id="non-utf8-path"),
    pytest.param("/account/" + "a" * 8000, {}, id="oversized-path"),
    pytest.param(
        "/billing?return_to=//evil.example&next=javascript:alert(1)", {}, id="return-to-in-query"
    ),
    pytest.param("/billing", {"Accept": "application/json;q=\u00ff, */*;q=nan"}, id="odd-accept"),
    pytest.param(
        "/billing",
        {"HX-Request": "true", "HX-Current-URL": "javascript:alert(1)"},
        id="hx-javascript",
    ),
    pytest.param(
        "/billing",
        {"HX-Request": "true", "HX-Current-URL": "//evil.example/x"},
        id="hx-scheme-relative",
    ),
    pytest.param(
        "/billing", {"Referer": "http://testserver.evil.example/"}, id="lookalike-referer"
    ),
]


@pytest.mark.parametrize(("path", "headers"), HOSTILE_GETS)
async def test_hostile_gets(app: Harness, path: str, headers: dict[str, str]) -> None:
    assert_clean(await app.get(path, {"Accept": "text/html", **headers}))


@pytest.mark.parametrize(
    "referer",
    [
        "//evil.example/form",
        "javascript:alert(1)",
        "http://evil.example/",
        "http://testserver@evil.example/",
        "http://testserver\u2028/",
        "\u00e9\u00e9",
    ],
)
async def test_hostile_referers_on_post(app: Harness, fake: FakeKratos, referer: str) -> None:
    session = fake.session("aal1", totp=True)
    reply = await app.request(
        "POST",
        "/billing",
        {"Cookie": session.cookie_header, "Referer": referer, "Accept": "text/html"},
    )
    assert_clean(reply)
    assert parse_qs(urlsplit(reply.headers["location"]).query)["return_to"] == [
        "http://testserver/"
    ]


async def test_non_utf8_header_bytes(app: Harness, fake: FakeKratos) -> None:
    if app.framework == "flask":
        headers: Any = {
            "Cookie": "ory_kratos_session=\xff\xfe",
            "Referer": "http://testserver/\xe9",
        }
        reply = await app.request("POST", "/billing", headers)
    else:
        assert app._async is not None
        raw = await app._async.post(
            "/billing",
            headers=[
                (b"Cookie", b"ory_kratos_session=\xff\xfe; other=\x80"),
                (b"Referer", b"http://testserver/\xe9"),
                (b"Accept", b"text/html\xff"),
            ],
        )
        from .conftest import Reply

        reply = Reply(raw.status_code, raw.headers, raw.content)
    assert_clean(reply)
    assert reply.status in (303, 405)


async def test_foreign_host_never_leaves_browser_url(app: Harness) -> None:
    # The Host header is the app's to vet (TrustedHostMiddleware, ALLOWED_HOSTS, or
    # app_url): kratos-aal sends the browser to Kratos only, and Kratos checks return_to.
    reply = await app.get("/billing", {"Host": "evil.example"})
    assert reply.status == 303
    assert_clean(reply, origin="http://evil.example")


@pytest.mark.parametrize("host", ["ex ample", "a/b@c", "[::1", "x" * 300, "evil.example:99999999"])
async def test_malformed_host_is_400(app: Harness, host: str) -> None:
    reply = await app.get("/billing", {"Host": host})
    assert reply.status == 400
    assert "location" not in reply.headers


async def test_foreign_host_with_app_url_returns_to_the_app(
    make_app: Any, fake: FakeKratos
) -> None:
    app = make_app(fake, app_url="https://shop.example")
    reply = await app.get("/billing", {"Host": "evil.example", "Accept": "text/html"})
    assert_clean(reply, origin="https://shop.example")

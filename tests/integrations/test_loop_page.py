"""The loop page's links under a mount prefix: home is where the app is mounted."""

from __future__ import annotations

import html
import re
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route

from kratos_aal._credentials import Credentials
from kratos_aal._web import MAX_HOPS, LoopPage, WebRequest, WebResponse
from kratos_aal.integrations._loop import alinked, linked
from kratos_aal.integrations.starlette import KratosAALMiddleware
from kratos_aal.integrations.wsgi import KratosAALWSGIMiddleware
from kratos_aal.testing import FakeKratos

HTML = {"Accept": "text/html"}


def wsgi_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"paid"]


def pay(request: Request) -> PlainTextResponse:
    return PlainTextResponse("paid")


def sign_out_of(body: str) -> str | None:
    found = re.search(r'<a href="([^"]+)">sign out</a>', body)
    return html.unescape(found.group(1)) if found else None


def bounce(get: Any, cookie: str) -> httpx.Response:
    """Follow the bounce MAX_HOPS times at once; return the reply after that."""
    headers = {**HTML, "Cookie": cookie}
    for _ in range(MAX_HOPS):
        reply = get(headers)
        assert reply.status_code == 303
        headers["Cookie"] = f"{cookie}; {reply.headers['set-cookie'].split(';')[0]}"
    page: httpx.Response = get(headers)
    assert page.status_code == 409
    return page


def test_wsgi_loop_page_home_and_sign_out_under_script_name(fake: FakeKratos) -> None:
    app = KratosAALWSGIMiddleware(wsgi_app, client=fake.client(), rules={"/pay": "aal2"})
    transport = httpx.WSGITransport(app=app, script_name="/shop")
    session = fake.session("aal1", totp=True)
    with httpx.Client(transport=transport, base_url="http://testserver") as http:
        page = bounce(lambda h: http.get("/pay", headers=h), session.cookie_header)
    assert '<a href="http://testserver/shop/">the home page</a>' in page.text
    sign_out = sign_out_of(page.text)
    assert sign_out is not None and sign_out.startswith(f"{fake.public_url}/self-service/logout?")
    assert parse_qs(urlsplit(sign_out).query)["return_to"] == ["http://testserver/shop/"]


def test_wsgi_loop_page_offers_no_sign_out_without_a_session(fake: FakeKratos) -> None:
    app = KratosAALWSGIMiddleware(wsgi_app, client=fake.client(), rules={"/pay": "aal2"})
    with httpx.Client(transport=httpx.WSGITransport(app=app), base_url="http://t") as http:
        page = bounce(lambda h: http.get("/pay", headers=h), "ory_kratos_session=wrong-domain")
    assert '<a href="http://t/">the home page</a>' in page.text
    assert sign_out_of(page.text) is None
    assert fake.calls["/self-service/logout/browser"] == 0


async def test_starlette_loop_page_home_under_root_path(fake: FakeKratos) -> None:
    inner = KratosAALMiddleware(
        Starlette(routes=[Route("/pay", pay)]),
        client=fake.async_client(),
        rules={"/pay": "aal2"},
    )
    outer = Starlette(routes=[Mount("/shop", app=inner)])
    session = fake.session("aal1", totp=True)
    transport = httpx.ASGITransport(app=outer)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        headers = {**HTML, "Cookie": session.cookie_header}
        for _ in range(MAX_HOPS):
            reply = await http.get("/shop/pay", headers=headers)
            assert reply.status_code == 303
            hop = reply.headers["set-cookie"].split(";")[0]
            headers["Cookie"] = f"{session.cookie_header}; {hop}"
        page = await http.get("/shop/pay", headers=headers)
    assert page.status_code == 409
    assert '<a href="http://testserver/shop/">the home page</a>' in page.text
    sign_out = sign_out_of(page.text)
    assert sign_out is not None
    assert parse_qs(urlsplit(sign_out).query)["return_to"] == ["http://testserver/shop/"]


def test_linked_leaves_other_responses_alone(fake: FakeKratos) -> None:
    other = WebResponse(303, [("Location", "x")])
    request = WebRequest("GET", "http", "t", "/pay")
    assert linked(other, request, Credentials(), fake.client()) is other


def test_linked_page_escapes_its_links() -> None:
    page = LoopPage(409, [], b"", 'http://k/login?a=1&b="2"')
    body = page.linked("/", 'http://k/logout?token=x&return_to="y"').body.decode()
    assert '<a href="http://k/login?a=1&amp;b=&quot;2&quot;">try again</a>' in body
    assert '<a href="http://k/logout?token=x&amp;return_to=&quot;y&quot;">sign out</a>' in body


def test_linked_without_a_usable_host_links_the_prefix_and_no_sign_out(fake: FakeKratos) -> None:
    # Cannot happen after a redirect was built, but a page must never raise: relative home.
    page = LoopPage(409, [], b"", "http://k/login", signed_in=True)
    request = WebRequest("GET", "http", "bad host", "/shop/pay")
    session = fake.session("aal1", totp=True)
    credentials = Credentials(cookie=session.cookie)
    body = linked(page, request, credentials, fake.client(), "/shop/").body.decode()
    assert '<a href="/shop/">the home page</a>' in body and ">sign out</a>" not in body
    assert fake.calls["/self-service/logout/browser"] == 0


async def test_alinked_when_kratos_cannot_make_a_logout_url(fake: FakeKratos) -> None:
    page = LoopPage(409, [], b"", "http://k/login", signed_in=True)
    request = WebRequest("GET", "http", "t", "/pay")
    session = fake.session("aal1", totp=True)
    fake.fail("timeout", path_prefix="/self-service/logout/browser")
    body = await alinked(page, request, Credentials(cookie=session.cookie), fake.async_client())
    assert (
        b'<a href="http://t/">the home page</a>' in body.body and b"sign out</a>" not in body.body
    )


def test_wsgi_loop_page_home_without_script_name(fake: FakeKratos) -> None:
    # SCRIPT_NAME may be left out for an app at the root (PEP 3333): home is "/" then.
    guarded = KratosAALWSGIMiddleware(wsgi_app, client=fake.client(), rules={"/pay": "aal2"})

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        del environ["SCRIPT_NAME"]
        return guarded(environ, start_response)

    session = fake.session("aal1", totp=True)
    with httpx.Client(transport=httpx.WSGITransport(app=app), base_url="http://t") as http:
        page = bounce(lambda h: http.get("/pay", headers=h), session.cookie_header)
    assert '<a href="http://t/">the home page</a>' in page.text

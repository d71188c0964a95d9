"""HTMX (SPEC §4, §5d) on every adapter: a guarded fragment, redirected or inline.

A fragment that needs step-up answers ``HX-Redirect`` to the step-up whose ``return_to``
is the page (``HX-Current-URL``), so that after the step-up the page loads and the
fragment renders; with ``htmx_inline`` it answers 200 with a link to follow instead.
``HX-Current-URL`` is the client's to write: anything but a URL of this origin is
ignored, never followed, never a 500.
"""

from __future__ import annotations

import asyncio
import html
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from kratos_aal.testing import FakeKratos, FakeSession

from . import htmx_apps

KRATOS = "http://127.0.0.1:4433/self-service"
PAGE = "http://testserver/account?tab=bank#iban"
HTMX = {"HX-Request": "true", "HX-Current-URL": PAGE, "Accept": "*/*"}


@pytest.fixture
def fake_kratos_options() -> dict[str, Any]:
    return {"whoami_required_aal": "aal1"}


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: str

    def link(self) -> str:
        """The inline fragment's link."""
        found = re.search(r'href="([^"]*)"', self.body)
        assert found, self.body
        return html.unescape(found.group(1))


class App:
    def __init__(self, framework: str, fake: FakeKratos) -> None:
        self.framework = framework
        self.fake = fake
        self.http: httpx.AsyncClient | None = None
        if framework == "flask":
            self.flask = htmx_apps.flask_app(fake.client()).test_client(use_cookies=False)
        elif framework in ("starlette", "fastapi"):
            build = htmx_apps.starlette_app if framework == "starlette" else htmx_apps.fastapi_app
            self.http = httpx.AsyncClient(
                transport=httpx.ASGITransport(app=build(fake.async_client())),
                base_url="http://testserver",
            )

    async def get(
        self, path: str, session: FakeSession | None = None, headers: dict[str, str] | None = None
    ) -> Reply:
        sent = dict(headers or {})
        if session is not None:
            sent["Cookie"] = f"ory_kratos_session={session.cookie}"
        if self.http is not None:
            raw = [(k.encode(), v.encode()) for k, v in sent.items()]
            answer = await self.http.get(path, headers=raw)
            return Reply(answer.status_code, dict(answer.headers), answer.text)
        # Header bytes beyond ASCII, as a WSGI server hands them on (latin-1).
        sent = {k: v.encode().decode("latin-1") for k, v in sent.items()}
        if self.framework == "flask":
            reply = await asyncio.to_thread(
                self.flask.get, path, headers=sent, base_url="http://testserver"
            )
            headers_out = {k.lower(): v for k, v in reply.headers.items()}
            return Reply(reply.status_code, headers_out, reply.get_data(as_text=True))
        from django.test import Client

        client = Client()
        response = await asyncio.to_thread(client.get, path, headers=sent)
        headers_out = {k.lower(): v for k, v in response.items()}
        return Reply(response.status_code, headers_out, response.content.decode())


@pytest.fixture(params=["starlette", "fastapi", "flask", "django"])
async def app(
    request: pytest.FixtureRequest, fake_kratos: FakeKratos, settings: Any
) -> AsyncIterator[App]:
    settings.ROOT_URLCONF = "tests.django.page_urls"
    made = App(str(request.param), fake_kratos)
    yield made
    if made.http is not None:
        await made.http.aclose()


@pytest.fixture(params=["", "a"], ids=["sync", "async"])
def prefix(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def query(url: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(url).query)


def same_origin_back(url: str) -> str:
    """The return_to of a Kratos URL, which must be this app's."""
    back = query(url)["return_to"][0]
    assert back.startswith("http://testserver/"), back
    return back


async def test_a_fragment_that_needs_step_up_redirects_the_page(app: App, prefix: str) -> None:
    reply = await app.get(f"/{prefix}frag", app.fake.session("aal1", totp=True), HTMX)
    assert reply.status == 403 and "location" not in reply.headers
    target = reply.headers["hx-redirect"]
    assert target.startswith(f"{KRATOS}/login/browser?")
    assert query(target) == {"aal": ["aal2"], "return_to": [PAGE]}


async def test_after_the_step_up_the_fragment_renders(app: App, prefix: str) -> None:
    reply = await app.get(f"/{prefix}frag", app.fake.session("aal2"), HTMX)
    assert (reply.status, reply.body) == (200, "[fragment:IBAN]")
    inline = await app.get(f"/{prefix}frag-inline", app.fake.session("aal2"), HTMX)
    assert (inline.status, inline.body) == (200, "[fragment:IBAN]")


@pytest.mark.parametrize(
    ("kind", "text", "target"),
    [
        ("aal1-totp", "Verify to see this", f"{KRATOS}/login/browser?aal=aal2&"),
        ("aal1", "Set up a second factor to see this", f"{KRATOS}/settings/browser?"),
        ("none", "Sign in to see this", f"{KRATOS}/login/browser?return_to="),
    ],
)
async def test_inline_keeps_the_fragment_in_the_page(
    app: App, prefix: str, kind: str, text: str, target: str
) -> None:
    session = None if kind == "none" else app.fake.session("aal1", totp=kind == "aal1-totp")
    reply = await app.get(f"/{prefix}frag-inline", session, HTMX)
    assert reply.status == 200 and "hx-redirect" not in reply.headers
    assert reply.headers["content-type"].startswith("text/html")
    assert reply.headers["cache-control"] == "no-store"
    assert text in reply.body and 'hx-boost="false"' in reply.body
    assert reply.link().startswith(target)
    assert same_origin_back(reply.link()) == PAGE


async def test_inline_is_for_htmx_only(app: App, prefix: str) -> None:
    session = app.fake.session("aal1", totp=True)
    reply = await app.get(f"/{prefix}frag-inline", session, {"Accept": "text/html"})
    assert reply.status == 303
    assert same_origin_back(reply.headers["location"]) == f"http://testserver/{prefix}frag-inline"


async def test_inline_does_not_hide_an_outage(app: App, prefix: str) -> None:
    session = app.fake.session("aal1", totp=True)
    app.fake.fail("reset", times=None)
    reply = await app.get(f"/{prefix}frag-inline", session, HTMX)
    assert reply.status == 503 and reply.headers["retry-after"]  # htmx swaps nothing


async def test_django_mixin_inline(fake_kratos: FakeKratos, settings: Any) -> None:
    settings.ROOT_URLCONF = "tests.django.page_urls"
    reply = await App("django", fake_kratos).get(
        "/frag-mixin", fake_kratos.session("aal1", totp=True), HTMX
    )
    assert reply.status == 200 and "Verify to see this" in reply.body
    assert same_origin_back(reply.link()) == PAGE


async def test_a_fragments_template_links_back_to_the_page(app: App, prefix: str) -> None:
    session = app.fake.session("aal1", totp=True)
    reply = await app.get(f"/{prefix}frag-template", session, HTMX)
    assert reply.status == 200
    link = html.unescape(re.findall(r"\[fragment:(.*?)\]", reply.body)[0])
    assert link.startswith(f"{KRATOS}/login/browser?aal=aal2&")
    assert same_origin_back(link) == PAGE
    shown = await app.get(f"/{prefix}frag-template", app.fake.session("aal2"), HTMX)
    assert "[fragment:IBAN]" in shown.body


HOSTILE = [
    pytest.param("https://evil.example/account", id="other-origin"),
    pytest.param("http://evil.example/account", id="other-host"),
    pytest.param("https://testserver/account", id="other-scheme"),
    pytest.param("http://testserver:8080/account", id="other-port"),
    pytest.param("http://testserver.evil.example/", id="suffix-host"),
    pytest.param("http://testserver@evil.example/", id="userinfo"),
    pytest.param("http://evil.example@testserver/", id="userinfo-ours"),
    pytest.param("http://testserver\\@evil.example/", id="backslash"),
    pytest.param("//evil.example/x", id="scheme-relative"),
    pytest.param("/account", id="relative"),
    pytest.param("javascript:alert(1)", id="javascript"),
    pytest.param("data:text/html,<script>alert(1)</script>", id="data"),
    pytest.param("http://testserver/" + "a" * 5000, id="overlong"),
    pytest.param("http://testserver/ a", id="space"),
    pytest.param("http://testserver/\tx", id="tab"),
    pytest.param("http://testserver/é", id="non-ascii"),
    pytest.param("http://[::1", id="garbage-ipv6"),
    pytest.param("%%%", id="garbage"),
    pytest.param("", id="empty"),
]


@pytest.mark.parametrize("current", HOSTILE)
@pytest.mark.parametrize("inline", ["", "-inline"], ids=["redirect", "inline"])
async def test_hostile_hx_current_url_is_never_followed(
    app: App, prefix: str, current: str, inline: str
) -> None:
    session = app.fake.session("aal1", totp=True)
    headers = {**HTMX, "HX-Current-URL": current}
    reply = await app.get(f"/{prefix}frag{inline}", session, headers)
    target = reply.link() if inline else reply.headers["hx-redirect"]
    assert reply.status == (200 if inline else 403)
    assert target.startswith(f"{KRATOS}/login/browser?aal=aal2&")
    # Not the page the client named: the fragment's own URL, which is this app's.
    assert same_origin_back(target) == f"http://testserver/{prefix}frag{inline}"


@pytest.mark.parametrize("current", HOSTILE)
async def test_hostile_hx_current_url_in_a_template(app: App, current: str) -> None:
    session = app.fake.session("aal1", totp=True)
    reply = await app.get("/frag-template", session, {**HTMX, "HX-Current-URL": current})
    assert reply.status == 200
    link = html.unescape(re.findall(r"\[fragment:(.*?)\]", reply.body)[0])
    assert same_origin_back(link) == "http://testserver/frag-template"


async def test_without_hx_current_url_the_fragment_itself(app: App) -> None:
    session = app.fake.session("aal1", totp=True)
    reply = await app.get("/frag", session, {"HX-Request": "true"})
    assert same_origin_back(reply.headers["hx-redirect"]) == "http://testserver/frag"

"""Jinja2 templates (SPEC §5d) on Starlette, FastAPI and Flask, sync and async views.

The app reaches Kratos at an internal URL (``http://kratos:4433``, which Kratos itself also
writes); browsers use ``https://id.example/kratos``. No page may show the internal one.
"""

from __future__ import annotations

import asyncio
import html
import re
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from starlette.types import Receive, Scope, Send

from kratos_aal import PageAccess
from kratos_aal.integrations.flask import current_session, get_session
from kratos_aal.testing import FakeKratos, FakeSession

from . import jinja_apps

INTERNAL = "http://kratos:4433"
BROWSER_URL = "https://id.example/kratos"
KRATOS = f"{BROWSER_URL}/self-service"
HTML = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}


class App:
    """One of the apps, with FakeKratos behind it; GETs return the body's pairs."""

    def __init__(self, framework: str) -> None:
        self.framework = framework
        self.fake = FakeKratos(public_url=INTERNAL, whoami_required_aal="aal1")
        if framework == "flask":
            client = self.fake.client(browser_url=BROWSER_URL)
            self.flask = jinja_apps.flask_app(client).test_client(use_cookies=False)
            self.http: httpx.AsyncClient | None = None
        else:
            aclient = self.fake.async_client(browser_url=BROWSER_URL)
            build = jinja_apps.starlette_app if framework == "starlette" else jinja_apps.fastapi_app
            self.http = httpx.AsyncClient(
                transport=httpx.ASGITransport(app=build(aclient)), base_url="http://testserver"
            )

    async def text(self, path: str, session: FakeSession | None = None) -> str:
        headers = dict(HTML)
        if session is not None:
            headers["Cookie"] = f"ory_kratos_session={session.cookie}"
        if self.http is None:
            # In a thread, as a WSGI server would: Flask runs async views on a loop of their own.
            reply = await asyncio.to_thread(
                self.flask.get, path, headers=headers, base_url="http://testserver"
            )
            status, body = reply.status_code, reply.get_data(as_text=True)
        else:
            answer = await self.http.get(path, headers=headers)
            status, body = answer.status_code, answer.text
        assert status == 200, body[:500]
        assert INTERNAL not in body and "kratos:4433" not in body
        return body

    async def fields(self, path: str, session: FakeSession | None = None) -> dict[str, str]:
        body = await self.text(path, session)
        return {k: html.unescape(v) for k, v in re.findall(r"\[(\w+):(.*?)\]", body)}


@pytest.fixture(params=["starlette", "fastapi", "flask"])
async def app(request: pytest.FixtureRequest) -> AsyncIterator[App]:
    made = App(str(request.param))
    yield made
    if made.http is not None:
        await made.http.aclose()


@pytest.fixture(params=["", "a"], ids=["sync", "async"])
def prefix(request: pytest.FixtureRequest) -> str:
    """``/page`` is a sync view where the framework has them, ``/apage`` an async one."""
    return str(request.param)


def split(url: str) -> tuple[str, dict[str, list[str]]]:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}", parse_qs(parts.query)


async def test_ada_at_aal1_is_offered_a_step_up(app: App, prefix: str) -> None:
    page = await app.fields(f"/{prefix}page", app.fake.session("aal1", totp=True))
    back = f"http://testserver/{prefix}page"
    assert page["session"] == "aal1" and page["reveal"] == "masked"
    assert page["aal1"] == "yes" and page["default"] == "" and page["outcome"] == "step_up"
    assert split(page["link"]) == (
        f"{KRATOS}/login/browser",
        {"aal": ["aal2"], "return_to": [back]},
    )
    assert split(page["login"]) == (f"{KRATOS}/login/browser", {"return_to": [back]})
    assert split(page["settings"]) == (f"{KRATOS}/settings/browser", {"return_to": [back]})


async def test_bob_is_offered_enrollment(app: App, prefix: str) -> None:
    page = await app.fields(f"/{prefix}page", app.fake.session("aal1"))
    assert page["outcome"] == "enroll"
    assert split(page["link"]) == (
        f"{KRATOS}/settings/browser",
        {"return_to": [f"http://testserver/{prefix}page"]},
    )


async def test_a_fresh_second_factor_reveals(app: App, prefix: str) -> None:
    page = await app.fields(f"/{prefix}page", app.fake.session("aal2"))
    assert page["session"] == "aal2" and page["reveal"] == "IBAN" and page["default"] == "aal2"
    assert page["outcome"] == "allow" and page["methods"] == "nokey"
    assert page["link"] == f"http://testserver/{prefix}page"


async def test_an_old_second_factor_is_asked_again(app: App, prefix: str) -> None:
    page = await app.fields(f"/{prefix}page", app.fake.session("aal2", authenticated_at=600))
    assert page["reveal"] == "masked" and page["outcome"] == "reauthenticate"
    _, query = split(page["link"])
    assert query["aal"] == ["aal2"] and query["refresh"] == ["true"]


async def test_a_passkey_meets_methods(app: App, prefix: str) -> None:
    session = app.fake.session("aal2", methods=["password", "webauthn"])
    assert (await app.fields(f"/{prefix}page", session))["methods"] == "key"


async def test_a_public_page(app: App, prefix: str) -> None:
    anonymous = await app.fields(f"/{prefix}public")
    assert anonymous["session"] == "none" and anonymous["outcome"] == "login"
    assert split(anonymous["link"]) == (
        f"{KRATOS}/login/browser",
        {"return_to": [f"http://testserver/{prefix}public"]},
    )
    assert app.fake.calls["/sessions/whoami"] == 0
    signed_in = await app.fields(f"/{prefix}public", app.fake.session("aal2"))
    assert signed_in["session"] == "aal2" and signed_in["reveal"] == "IBAN"


async def test_logout_url(app: App, prefix: str) -> None:
    session = app.fake.session("aal1")
    page = await app.fields(f"/{prefix}logout", session)
    url, query = split(page["logout"])
    assert url == f"{KRATOS}/logout" and query["token"]
    assert split(page["home"])[1]["return_to"] == ["http://testserver/"]
    assert await app.fields(f"/{prefix}logout", session) == page
    assert app.fake.calls["/self-service/logout/browser"] == 1  # cached with the session
    assert (await app.fields(f"/{prefix}logout"))["logout"] == ""


@pytest.mark.parametrize("warm", [False, True], ids=["cold", "cache-hit"])
@pytest.mark.parametrize("level", ["aal2", "aal1-totp", "aal1"])
async def test_five_guarded_sections_cost_one_kratos_call_at_most(
    app: App, prefix: str, level: str, warm: bool
) -> None:
    """As on Django: whoami for the route's check, and for an aal1 session below the
    sections' aal2 one second-factor answer (cached by identity), never one per section."""
    session = app.fake.session("aal2" if level == "aal2" else "aal1", totp=level != "aal1")
    if warm:
        await app.fields(f"/{prefix}five", session)
        app.fake.calls.clear()
    page = await app.fields(f"/{prefix}five", session)
    assert len(page) == 5
    whoami = app.fake.calls["/sessions/whoami"]
    probes = app.fake.calls["/self-service/login/browser"]
    if warm:
        assert (whoami, probes) == (0, 0)
    elif level == "aal2":
        assert (whoami, probes) == (1, 0) and set(page.values()) == {"shown"}
    else:
        assert (whoami, probes) == (1, 1)
    assert sum(app.fake.calls.values()) == whoami + probes


@pytest.mark.parametrize("framework", ["starlette", "fastapi"])
async def test_async_templates_need_load_page(framework: str) -> None:
    made = App(framework)
    try:
        session = made.fake.session("aal2")
        assert (await made.fields("/plain", session)) == {"plain": "ok"}  # asks nothing
        with pytest.raises(RuntimeError, match=r"await load_page\(request\)"):
            await made.text("/unloaded", session)
        with pytest.raises(RuntimeError, match=r"LoadPage\(logout=True\)"):
            await made.text("/logout-not-loaded", session)
    finally:
        assert made.http is not None
        await made.http.aclose()


async def test_kratos_trouble_is_a_503(app: App) -> None:
    session = app.fake.session("aal2")
    app.fake.fail("reset", times=None)
    headers = {**HTML, "Cookie": f"ory_kratos_session={session.cookie}"}
    if app.http is None:
        reply = await asyncio.to_thread(app.flask.get, "/public", headers=headers)
        status, retry = reply.status_code, reply.headers.get("Retry-After")
    else:
        answer = await app.http.get("/public", headers=headers)
        status, retry = answer.status_code, answer.headers.get("Retry-After")
    assert status == 503 and retry


def test_flask_globals_need_the_extension() -> None:
    from flask import Flask, render_template_string

    from kratos_aal.integrations.jinja import install_flask

    bare = Flask(__name__)
    install_flask(bare)
    with bare.test_request_context("/"), pytest.raises(RuntimeError, match="KratosAAL"):
        render_template_string("{{ allows('aal1') }}")


def test_the_module_imports_no_framework() -> None:
    import subprocess
    import sys

    code = (
        "import sys, kratos_aal.integrations.jinja\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'starlette', 'flask', 'fastapi'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


async def test_a_withheld_session_is_a_step_up(app: App, prefix: str) -> None:
    # Kratos under highest_available withholds an aal1 session of a user with a second
    # factor (whoami 403 session_aal2_required): every question is a step-up.
    app.fake.whoami_required_aal = "highest_available"
    page = await app.fields(f"/{prefix}public", app.fake.session("aal1", totp=True))
    assert page["session"] == "none" and page["aal1"] == "no" and page["outcome"] == "step_up"
    assert split(page["link"]) == (
        f"{KRATOS}/login/browser",
        {"aal": ["aal2"], "return_to": [f"http://testserver/{prefix}public"]},
    )


async def test_a_logout_url_kratos_cannot_make_leaves_the_page_whole(app: App, prefix: str) -> None:
    session = app.fake.session("aal1")
    app.fake.fail("status", status=500, path_prefix="/self-service/logout", times=None)
    page = await app.fields(f"/{prefix}logout", session)
    assert page["logout"] == "" and page["home"] == ""
    app.fake.heal()
    later = await app.fields(f"/{prefix}logout", session)
    assert later["logout"].startswith(f"{KRATOS}/logout?")  # a failure is not remembered


async def test_a_hostile_host_header_renders_without_return_to(app: App) -> None:
    # Without app_url the page's URL comes from Host: one that is no host is never used.
    session = app.fake.session("aal1", totp=True)
    headers = {**HTML, "Host": "evil host!", "Cookie": f"ory_kratos_session={session.cookie}"}
    if app.http is None:
        reply = await asyncio.to_thread(app.flask.get, "/public", headers=headers)
        status, body = reply.status_code, reply.get_data(as_text=True)
    else:
        answer = await app.http.get("/public", headers=headers)
        status, body = answer.status_code, answer.text
    assert status == 200, body[:300]
    page = {k: html.unescape(v) for k, v in re.findall(r"\[(\w+):(.*?)\]", body)}
    assert page["link"] == f"{KRATOS}/login/browser?aal=aal2"
    assert page["login"] == f"{KRATOS}/login/browser"


async def test_a_page_is_loaded_once_per_request() -> None:
    from starlette.requests import Request

    from kratos_aal.integrations.jinja import LoadPage, load_page
    from kratos_aal.integrations.starlette import KratosAALMiddleware

    fake = FakeKratos(public_url=INTERNAL, whoami_required_aal="aal1")
    session = fake.session("aal1")
    pages: list[PageAccess] = []

    async def endpoint(scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        first = await load_page(request)
        pages.extend([first, await load_page(request)])
        with_logout = await LoadPage(logout=True)(request)
        pages.extend([with_logout, await load_page(request)])
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    middleware = KratosAALMiddleware(endpoint, client=fake.async_client())
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=middleware), base_url="http://testserver"
    ) as http:
        reply = await http.get("/", headers={"Cookie": f"ory_kratos_session={session.cookie}"})
    assert reply.status_code == 204
    first, again, with_logout, after = pages
    assert again is first and with_logout is not first and after is with_logout
    assert (with_logout.logout_url() or "").startswith(f"{INTERNAL}/self-service/logout")
    assert fake.calls["/sessions/whoami"] == 1
    assert repr(LoadPage(logout=True)) == "LoadPage(logout=True)"


async def test_a_forged_cookie_costs_one_call_on_a_page_that_links_logout(
    app: App, prefix: str
) -> None:
    # SPEC §8: a credential the client writes costs one Kratos call at most. whoami says
    # there is no session; there is then no logout URL to ask Kratos for.
    for index in range(3):
        forged: Any = SimpleNamespace(cookie=f"forged-{index}")
        page = await app.fields(f"/{prefix}logout", forged)
        assert page == {"logout": "", "home": ""}
    assert dict(app.fake.calls) == {"/sessions/whoami": 3}


@pytest.mark.parametrize("path", ["/page", "/apage", "/public", "/apublic"])
def test_flask_requests_in_one_app_context_keep_their_own_session(path: str) -> None:
    # An app that pushes an app context at import (or a test inside `with app.app_context()`)
    # shares one `g` between every request of the thread: what one request found must not
    # be what the next one shows.
    fake = FakeKratos(public_url=INTERNAL, whoami_required_aal="aal1")
    app = jinja_apps.flask_app(fake.client(browser_url=BROWSER_URL))

    @app.get("/who")
    def who() -> str:
        # The proxy and the function, as apps read them.
        found = get_session()
        assert (found is None) == (not current_session)
        return found.identity.id if found is not None and found.identity else "nobody"

    ada, bob = fake.session("aal2"), fake.session("aal1", totp=False)
    visitors: list[tuple[FakeSession | None, str, str]] = [
        (ada, "aal2", "IBAN"),
        (bob, "aal1", "masked"),
    ]
    if "public" in path:
        visitors.append((None, "none", "masked"))
    with app.app_context():
        client = app.test_client(use_cookies=False)
        for _ in range(2):
            for session, aal, reveal in visitors:
                headers = dict(HTML)
                if session is not None:
                    headers["Cookie"] = f"ory_kratos_session={session.cookie}"
                reply = client.get(path, headers=headers)
                assert reply.status_code == 200
                page = dict(re.findall(r"\[(\w+):(.*?)\]", reply.get_data(as_text=True)))
                assert (page["session"], page["reveal"]) == (aal, reveal)
                answer = client.get("/who", headers=headers).get_data(as_text=True)
                assert answer == (session.identity.id if session is not None else "nobody")

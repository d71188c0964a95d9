"""Django templates (SPEC §5d): the context processor and ``{% load kratos_aal %}``.

Each case runs on a sync view and on an async view (which awaits ``apage_access``), with
Django's Client in a worker thread as WSGI would, or its AsyncClient.
"""

from __future__ import annotations

import asyncio
import html
import re
from types import SimpleNamespace
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from django.core.exceptions import ImproperlyConfigured
from django.template import Context, Template, TemplateSyntaxError
from django.test import AsyncClient, Client

from kratos_aal.testing import FakeKratos, FakeSession

pytestmark = pytest.mark.urls("tests.django.page_urls")

KRATOS = "http://127.0.0.1:4433/self-service"
BROWSER = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}


@pytest.fixture(params=["sync", "async"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def get(kind: str, path: str, session: FakeSession | None) -> Any:
    if kind == "sync":
        client = Client()
        if session is not None:
            client.cookies.load(session.cookies)
        return await asyncio.to_thread(client.get, path, headers=BROWSER)
    aclient = AsyncClient()
    if session is not None:
        aclient.cookies.load(session.cookies)
    return await aclient.get(f"/a{path.lstrip('/')}", headers=BROWSER)


def fields(reply: Any) -> dict[str, str]:
    assert reply.status_code == 200, reply.content[:500]
    text = reply.content.decode()
    return {k: html.unescape(v) for k, v in re.findall(r"\[(\w+):(.*?)\]", text)}


def split(url: str) -> tuple[str, dict[str, list[str]]]:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}", parse_qs(parts.query)


async def test_ada_at_aal1_is_offered_a_step_up(fake_kratos: FakeKratos, kind: str) -> None:
    page = fields(await get(kind, "/page/", fake_kratos.session("aal1", totp=True)))
    back = f"http://testserver/{'a' if kind == 'async' else ''}page/"
    assert page["session"] == "aal1" and page["reveal"] == "masked"
    assert page["aal1"] == "yes" and page["default"] == "" and page["outcome"] == "step_up"
    assert split(page["link"]) == (
        f"{KRATOS}/login/browser",
        {"aal": ["aal2"], "return_to": [back]},
    )
    assert split(page["login"]) == (f"{KRATOS}/login/browser", {"return_to": [back]})
    assert split(page["settings"]) == (f"{KRATOS}/settings/browser", {"return_to": [back]})
    assert page["object"] == page["login"]  # {{ kratos.login_url }}, the context processor's


async def test_bob_without_a_second_factor_is_offered_enrollment(
    fake_kratos: FakeKratos, kind: str
) -> None:
    page = fields(await get(kind, "/page/", fake_kratos.session("aal1")))
    back = f"http://testserver/{'a' if kind == 'async' else ''}page/"
    assert page["reveal"] == "masked" and page["outcome"] == "enroll"
    assert split(page["link"]) == (f"{KRATOS}/settings/browser", {"return_to": [back]})


async def test_a_fresh_second_factor_reveals(fake_kratos: FakeKratos, kind: str) -> None:
    page = fields(await get(kind, "/page/", fake_kratos.session("aal2")))
    assert page["session"] == "aal2" and page["reveal"] == "IBAN" and page["default"] == "aal2"
    assert page["outcome"] == "allow" and page["methods"] == "nokey"
    # What is allowed already links to the page itself.
    assert page["link"] == f"http://testserver/{'a' if kind == 'async' else ''}page/"


async def test_an_old_second_factor_is_asked_again(fake_kratos: FakeKratos, kind: str) -> None:
    page = fields(await get(kind, "/page/", fake_kratos.session("aal2", authenticated_at=600)))
    assert page["reveal"] == "masked" and page["outcome"] == "reauthenticate"
    assert page["default"] == "aal2"  # no max_age: still allowed
    link, query = split(page["link"])
    assert link == f"{KRATOS}/login/browser"
    assert query["aal"] == ["aal2"] and query["refresh"] == ["true"]


async def test_methods_read_from_a_text(fake_kratos: FakeKratos, kind: str) -> None:
    session = fake_kratos.session("aal2", methods=["password", "webauthn"])
    page = fields(await get(kind, "/page/", session))
    assert page["methods"] == "key"


async def test_a_public_page_without_a_session(fake_kratos: FakeKratos, kind: str) -> None:
    page = fields(await get(kind, "/public/", None))
    back = f"http://testserver/{'a' if kind == 'async' else ''}public/"
    assert page["session"] == "none" and page["reveal"] == "masked" and page["aal1"] == "no"
    assert page["outcome"] == "login"
    # Never aal=aal2 without a session: Kratos answers that with session_aal1_required.
    assert split(page["link"]) == (f"{KRATOS}/login/browser", {"return_to": [back]})
    assert fake_kratos.calls["/sessions/whoami"] == 0  # no credential: nothing to ask


async def test_a_public_page_with_a_session(fake_kratos: FakeKratos, kind: str) -> None:
    page = fields(await get(kind, "/public/", fake_kratos.session("aal2")))
    assert page["session"] == "aal2" and page["reveal"] == "IBAN"
    assert fake_kratos.calls["/sessions/whoami"] == 1


async def test_logout_url_is_a_working_kratos_logout(fake_kratos: FakeKratos, kind: str) -> None:
    session = fake_kratos.session("aal1")
    page = fields(await get(kind, "/logout/", session))
    url, query = split(page["logout"])
    assert url == f"{KRATOS}/logout" and query["token"]
    # It works: Kratos ends the session it belongs to.
    answer = fake_kratos.handle(_get(page["logout"], session))
    assert answer.status_code == 303
    assert fake_kratos.handle(_whoami(session)).status_code == 401


async def test_logout_url_is_empty_without_a_session(fake_kratos: FakeKratos, kind: str) -> None:
    page = fields(await get(kind, "/logout/", None))
    assert page["logout"] == ""


async def test_a_forged_cookie_costs_one_call_on_a_page_that_links_logout(
    fake_kratos: FakeKratos, kind: str
) -> None:
    # SPEC §8: whoami says there is no session, so there is no logout URL to ask Kratos for.
    for index in range(3):
        forged: Any = SimpleNamespace(cookies={"ory_kratos_session": f"forged-{index}"})
        assert fields(await get(kind, "/logout/", forged)) == {"logout": ""}
    assert dict(fake_kratos.calls) == {"/sessions/whoami": 3}


async def test_logout_url_is_cached_with_the_session(fake_kratos: FakeKratos, kind: str) -> None:
    session = fake_kratos.session("aal1")
    first = fields(await get(kind, "/logout/", session))
    second = fields(await get(kind, "/logout/", session))
    assert first == second
    assert fake_kratos.calls["/self-service/logout/browser"] == 1


async def test_an_async_view_must_load_the_logout_url(fake_kratos: FakeKratos) -> None:
    aclient = AsyncClient()
    aclient.cookies.load(fake_kratos.session("aal1").cookies)
    with pytest.raises(RuntimeError, match=r"apage_access\(request, logout=True\)"):
        await aclient.get("/alogout-not-loaded/", headers=BROWSER)


async def test_an_async_view_must_load_the_page_first(fake_kratos: FakeKratos) -> None:
    aclient = AsyncClient()
    aclient.cookies.load(fake_kratos.session("aal2").cookies)
    with pytest.raises(RuntimeError, match=r"await apage_access\(request\)"):
        await aclient.get("/unprepared/", headers=BROWSER)


async def test_a_template_response_of_an_async_view_needs_nothing(
    fake_kratos: FakeKratos,
) -> None:
    aclient = AsyncClient()
    aclient.cookies.load(fake_kratos.session("aal1").cookies)
    page = fields(await aclient.get("/template-response/", headers=BROWSER))
    assert page["outcome"] == "enroll"


@pytest.mark.parametrize("warm", [False, True], ids=["cold", "cache-hit"])
@pytest.mark.parametrize("level", ["aal2", "aal1-totp", "aal1"])
async def test_five_guarded_sections_cost_one_kratos_call_at_most(
    fake_kratos: FakeKratos, kind: str, level: str, warm: bool
) -> None:
    """The page's own check asks whoami; the five sections ask nothing of their own.

    An aal1 session below the sections' aal2 is told step-up from enrollment by one
    second-factor answer, cached by identity like the middleware's: asked once for the
    identity (and already known on the page's second visit), never once per section.
    """
    aal = "aal2" if level == "aal2" else "aal1"
    session = fake_kratos.session(aal, totp=level != "aal1")
    if warm:
        await get(kind, "/five/", session)
        fake_kratos.calls.clear()
    page = fields(await get(kind, "/five/", session))
    assert len(page) == 5
    whoami = fake_kratos.calls["/sessions/whoami"]
    probes = fake_kratos.calls["/self-service/login/browser"]
    if warm:
        assert (whoami, probes) == (0, 0)
    elif level == "aal2":
        assert (whoami, probes) == (1, 0)
        assert set(page.values()) == {"shown"}
    else:
        # whoami for the route's check, and one probe for all five sections.
        assert (whoami, probes) == (1, 1)
        target = "login/browser" if level == "aal1-totp" else "settings/browser"
        assert all(f"{KRATOS}/{target}?" in value for value in page.values())
    assert sum(fake_kratos.calls.values()) == whoami + probes


def test_the_tags_need_the_request() -> None:
    template = Template("{% load kratos_aal %}{% login_url %}")
    with pytest.raises(ImproperlyConfigured, match="need the request"):
        template.render(Context({}))


@pytest.mark.parametrize(
    "tag",
    [
        '{% if_aal "aal2" bogus=1 %}x{% endif_aal %}',
        '{% if_aal "aal2" max_age %}x{% endif_aal %}',
        '{% if_aal "aal2" max_age=1 max_age=2 %}x{% endif_aal %}',
    ],
)
def test_if_aal_syntax_errors(tag: str) -> None:
    with pytest.raises(TemplateSyntaxError, match="if_aal takes"):
        Template("{% load kratos_aal %}" + tag)


@pytest.mark.parametrize(
    ("tag", "named"),
    [
        ('{% if_aal "aal3" %}x{% endif_aal %}', "aal"),
        ("{% if_aal max_age=-1 %}x{% endif_aal %}", "max_age"),
        ("{% if_aal max_age=0 %}x{% endif_aal %}", "max_age"),
        ('{% if_aal "aal2" max_age="300" %}x{% endif_aal %}', "max_age"),
        ("{% if_aal methods=5 %}x{% endif_aal %}", "methods"),
        ('{% if_aal "aal1" methods="" %}x{% endif_aal %}', "methods"),
    ],
)
def test_if_aal_refuses_a_literal_requirement_it_cannot_make_when_compiled(
    tag: str, named: str
) -> None:
    with pytest.raises(TemplateSyntaxError, match=rf"if_aal %}}: .*{named}"):
        Template("{% load kratos_aal %}" + tag)


def test_if_aal_leaves_variables_to_the_render() -> None:
    # A variable is not known when the template is compiled: only literals are judged then.
    for tag in (
        "{% if_aal level max_age=300 %}x{% endif_aal %}",
        '{% if_aal "aal2" max_age=age methods=names %}x{% endif_aal %}',
        '{% if_aal "aal2" max_age=300|add:0 %}x{% endif_aal %}',
    ):
        Template("{% load kratos_aal %}" + tag)


async def test_kratos_trouble_on_a_public_page_is_a_503(fake_kratos: FakeKratos, kind: str) -> None:
    session = fake_kratos.session("aal2")
    fake_kratos.fail("reset", times=None)
    if kind == "sync":
        client = Client()
        client.cookies.load(session.cookies)
        reply = await asyncio.to_thread(client.get, "/public/", headers=BROWSER)
    else:
        aclient = AsyncClient()
        aclient.cookies.load(session.cookies)
        reply = await aclient.get("/apublic/", headers=BROWSER)
    assert reply.status_code == 503 and reply["Retry-After"]


def _get(url: str, session: FakeSession) -> httpx.Request:
    """The browser's request to *url*, with the session cookie."""
    return httpx.Request("GET", url, headers={"Cookie": f"ory_kratos_session={session.cookie}"})


def _whoami(session: FakeSession) -> httpx.Request:
    return _get("http://127.0.0.1:4433/sessions/whoami", session)


async def test_a_withheld_session_is_a_step_up(fake_kratos: FakeKratos, kind: str) -> None:
    # Kratos under highest_available withholds an aal1 session of a user with a second
    # factor (whoami 403 session_aal2_required): every section is a step-up.
    fake_kratos.whoami_required_aal = "highest_available"
    page = fields(await get(kind, "/public/", fake_kratos.session("aal1", totp=True)))
    back = f"http://testserver/{'a' if kind == 'async' else ''}public/"
    assert page["session"] == "none" and page["aal1"] == "no" and page["outcome"] == "step_up"
    assert split(page["link"]) == (
        f"{KRATOS}/login/browser",
        {"aal": ["aal2"], "return_to": [back]},
    )


def test_without_the_middleware_the_page_asks_the_client(fake_kratos: FakeKratos) -> None:
    from django.test import RequestFactory

    from kratos_aal.integrations.django import page_access

    session = fake_kratos.session("aal1", totp=True)
    request = RequestFactory().get("/x", HTTP_COOKIE=session.cookie_header)
    page = page_access(request)
    assert page is page_access(request)  # once per request
    assert page.session is not None and page.session.id == session.id
    assert page.decision("aal2").outcome.value == "step_up"
    assert fake_kratos.calls["/sessions/whoami"] == 1
    fake_kratos.whoami_required_aal = "highest_available"
    withheld = RequestFactory().get(
        "/x", HTTP_COOKIE=fake_kratos.session("aal1", totp=True).cookie_header
    )
    assert page_access(withheld).decision("aal1").outcome.value == "step_up"


async def test_apage_access_loads_the_logout_url_when_asked_later(fake_kratos: FakeKratos) -> None:
    from django.test import RequestFactory

    from kratos_aal.integrations.django import apage_access

    session = fake_kratos.session("aal2")
    request = RequestFactory().get("/x", HTTP_COOKIE=session.cookie_header)
    first = await apage_access(request)
    assert await apage_access(request) is first
    with pytest.raises(RuntimeError, match="logout=True"):
        first.logout_url()
    second = await apage_access(request, logout=True)
    assert second is not first and (second.logout_url() or "").startswith(f"{KRATOS}/logout?")
    assert await apage_access(request, logout=True) is second
    assert request.kratos_session.id == session.id  # sync code of the request reads it too
    assert fake_kratos.calls["/sessions/whoami"] == 1


async def test_async_views_never_ask_kratos_blocking(
    fake_kratos: FakeKratos, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The middleware's lazy request.kratos_session asks the blocking client: in an async
    # view it must stay unread (isinstance(lazy, Session) would read it, on the loop).
    from kratos_aal.integrations.django.conf import clients

    def blocking(*args: Any) -> Any:
        raise AssertionError("a blocking whoami in async code")

    monkeypatch.setattr(clients()[0], "whoami", blocking)
    aclient = AsyncClient()
    aclient.cookies.load(fake_kratos.session("aal2").cookies)
    page = fields(await aclient.get("/apublic/", headers=BROWSER))
    assert page["session"] == "aal2"
    assert (await aclient.get("/ame/", headers=BROWSER)).json()["aal"] == "aal2"


async def test_a_logout_url_kratos_cannot_make_leaves_the_page_whole(
    fake_kratos: FakeKratos, kind: str
) -> None:
    session = fake_kratos.session("aal1")
    fake_kratos.fail("status", status=500, path_prefix="/self-service/logout", times=None)
    assert fields(await get(kind, "/logout/", session))["logout"] == ""


def test_a_hostile_host_header_is_a_400(fake_kratos: FakeKratos) -> None:
    client = Client()
    client.cookies.load(fake_kratos.session("aal1", totp=True).cookies)
    assert client.get("/public/", headers={**BROWSER, "Host": "evil host!"}).status_code == 400

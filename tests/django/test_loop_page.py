"""Django: the loop page links home and signs out the session it received, sync and async."""

from __future__ import annotations

import asyncio
import html
import re
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from django.test import AsyncClient, Client

from kratos_aal._web import HOP_COOKIE, MAX_HOPS
from kratos_aal.testing import FakeKratos

KRATOS = "http://127.0.0.1:4433"
BROWSER = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
PAGES = [
    pytest.param("sync", "/billing/", id="sync"),
    pytest.param("async", "/billing/async/", id="async"),
]


async def bounce(kind: str, path: str, cookies: dict[str, str]) -> Any:
    """Follow the bounce MAX_HOPS times at once; return the reply after that."""
    client: Client | AsyncClient = Client() if kind == "sync" else AsyncClient()
    client.cookies.load(cookies)

    async def get() -> Any:
        if isinstance(client, AsyncClient):
            return await client.get(path, headers=BROWSER)
        return await asyncio.to_thread(client.get, path, headers=BROWSER)

    for _ in range(MAX_HOPS):
        reply = await get()
        assert reply.status_code == 303
        # The hop cookie is a raw Set-Cookie header: keep it, as a browser does.
        name, value = reply["Set-Cookie"].split(";")[0].split("=", 1)
        assert name == HOP_COOKIE
        client.cookies[name] = value
    return await get()


@pytest.mark.parametrize(("kind", "path"), PAGES)
async def test_loop_page_signs_out_the_session(
    fake_kratos: FakeKratos, kind: str, path: str
) -> None:
    session = fake_kratos.session("aal1", totp=True)
    page = await bounce(kind, path, session.cookies)
    assert page.status_code == 409
    body = page.content.decode()
    assert '<a href="http://testserver/">the home page</a>' in body
    found = re.search(r'<a href="([^"]+)">sign out</a>', body)
    assert found is not None
    sign_out = html.unescape(found.group(1))
    assert sign_out.startswith(f"{KRATOS}/self-service/logout?token=")
    assert parse_qs(urlsplit(sign_out).query)["return_to"] == ["http://testserver/"]


@pytest.mark.parametrize(("kind", "path"), PAGES)
async def test_loop_page_without_a_session_offers_home_only(
    fake_kratos: FakeKratos, kind: str, path: str
) -> None:
    page = await bounce(kind, path, {"ory_kratos_session": "wrong-domain"})
    assert page.status_code == 409
    assert b'<a href="http://testserver/">the home page</a>' in page.content
    assert b">sign out</a>" not in page.content
    assert fake_kratos.calls["/self-service/logout/browser"] == 0


@pytest.mark.parametrize(("kind", "path"), PAGES)
async def test_the_loop_page_comes_though_a_rule_above_allows(
    fake_kratos: FakeKratos, settings: Any, kind: str, path: str
) -> None:
    # RULES allow aal1 and the view's decorator sends the browser on for aal2: the rule's
    # clearing of the counter must not undo the count the decorator's denial sets.
    settings.KRATOS_AAL = {**settings.KRATOS_AAL, "RULES": {"/billing/*": "aal1"}}
    session = fake_kratos.session("aal1", totp=True)
    client: Client | AsyncClient = Client() if kind == "sync" else AsyncClient()
    client.cookies.load(session.cookies)
    statuses = []
    for _ in range(MAX_HOPS + 1):
        if isinstance(client, AsyncClient):
            reply = await client.get(path, headers=BROWSER)
        else:
            reply = await asyncio.to_thread(client.get, path, headers=BROWSER)
        statuses.append(reply.status_code)
        # Read before the jar changes: Django's test client shares the reply's Morsels.
        cleared = HOP_COOKIE in reply.cookies and not reply.cookies[HOP_COOKIE].value
        if reply.has_header("Set-Cookie"):  # the denial's count, a raw header
            name, value = reply["Set-Cookie"].split(";")[0].split("=", 1)
            assert name == HOP_COOKIE
            client.cookies[name] = value
        if cleared:  # Django sends response.cookies after the headers: that one wins
            del client.cookies[HOP_COOKIE]
    assert statuses == [303] * MAX_HOPS + [409]


@pytest.mark.parametrize(("kind", "path"), PAGES)
async def test_a_forged_hop_count_gets_no_loop_page(
    fake_kratos: FakeKratos, kind: str, path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import hashlib
    import types

    from django.conf import settings

    from kratos_aal._web import denials, hop_key
    from kratos_aal._web.hops import _hop_mac

    now = 1_800_000_000
    monkeypatch.setattr(denials, "time", types.SimpleNamespace(time=lambda: now))
    session = fake_kratos.session("aal1", totp=True)
    route = hashlib.sha256(path.encode()).hexdigest()[:12]
    payload = f"{route}.{MAX_HOPS}.{now}"
    unsigned = {**session.cookies, HOP_COOKIE: payload}
    client: Client | AsyncClient = Client() if kind == "sync" else AsyncClient()
    client.cookies.load(unsigned)
    if isinstance(client, AsyncClient):
        reply = await client.get(path, headers=BROWSER)
    else:
        reply = await asyncio.to_thread(client.get, path, headers=BROWSER)
    assert reply.status_code == 303  # no count: a redirect, never the loop page
    assert fake_kratos.calls["/self-service/logout/browser"] == 0
    # The count Django signs is keyed by SECRET_KEY, the same in every worker.
    signed = f"{payload}.{_hop_mac(hop_key(settings.SECRET_KEY), payload)}"
    client.cookies.load({HOP_COOKIE: signed})
    if isinstance(client, AsyncClient):
        reply = await client.get(path, headers=BROWSER)
    else:
        reply = await asyncio.to_thread(client.get, path, headers=BROWSER)
    assert reply.status_code == 409

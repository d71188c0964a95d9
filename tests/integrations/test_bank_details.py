"""The examples' Account page: bank details revealed inside the page (SPEC §5d), without a browser.

Starlette, FastAPI and Flask through the examples' harness; Django through its test client.
The browser walk-through (tests/browser/test_reveal.py) follows the same story by clicks.
"""

from __future__ import annotations

import asyncio
import html
import re
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from django.test import Client

from examples import _pages
from kratos_aal.testing import FakeKratos, FakeSession

from .conftest import Harness

KRATOS = "http://127.0.0.1:4433/self-service"
CHROME = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}


@pytest.fixture
def fake_kratos_options() -> dict[str, Any]:
    return {"whoami_required_aal": "aal1"}


class Bank:
    """The bank details section of an Account page."""

    def __init__(self, page: str) -> None:
        found = re.search(r"<section class=bank>(.*?)</section>", page, re.S)
        assert found, page
        self.text = html.unescape(re.sub(r"<[^>]+>", " ", found.group(1)))
        link = re.search(r'<a class=reveal href="([^"]*)">([^<]*)</a>', found.group(1))
        self.href = html.unescape(link.group(1)) if link else None
        self.label = link.group(2) if link else None


async def account(framework: str, harness: Harness | None, session: FakeSession) -> Bank:
    if harness is not None:
        reply = await harness.get("/account", {**CHROME, "Cookie": session.cookie_header})
        assert reply.status == 200
        return Bank(reply.body.decode())
    client = Client()
    client.cookies.load(session.cookies)
    response = await asyncio.to_thread(client.get, "/account/", headers=CHROME)
    assert response.status_code == 200
    return Bank(response.content.decode())


@pytest.fixture(params=["starlette", "fastapi", "flask", "django"])
def framework(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def harness(framework: str, fake_kratos: FakeKratos) -> AsyncIterator[Harness | None]:
    if framework == "django":
        yield None  # Django's own test client, on the fake_kratos fixture's clients
        return
    made = Harness(framework, fake_kratos)
    yield made
    await made.close()


def back(url: str | None) -> tuple[str, dict[str, list[str]]]:
    assert url is not None
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}", parse_qs(parts.query)


async def test_ada_at_aal1_sees_it_masked_with_a_step_up(
    framework: str, harness: Harness | None, fake_kratos: FakeKratos
) -> None:
    bank = await account(framework, harness, fake_kratos.session("aal1", totp=True))
    assert _pages.MASKED_IBAN in bank.text and _pages.IBAN not in bank.text
    assert bank.label == "Reveal (asks for your authenticator)"
    slash = "/" if framework == "django" else ""
    assert back(bank.href) == (
        f"{KRATOS}/login/browser",
        {"aal": ["aal2"], "return_to": [f"http://testserver/account{slash}"]},
    )


async def test_bob_is_offered_to_set_up_an_authenticator(
    framework: str, harness: Harness | None, fake_kratos: FakeKratos
) -> None:
    bank = await account(framework, harness, fake_kratos.session("aal1"))
    assert _pages.MASKED_IBAN in bank.text
    assert bank.label == "Set up an authenticator to reveal"
    slash = "/" if framework == "django" else ""
    assert back(bank.href) == (
        f"{KRATOS}/settings/browser",
        {"return_to": [f"http://testserver/account{slash}"]},
    )


async def test_a_fresh_second_factor_shows_the_iban(
    framework: str, harness: Harness | None, fake_kratos: FakeKratos
) -> None:
    bank = await account(framework, harness, fake_kratos.session("aal2"))
    assert _pages.IBAN in bank.text and bank.href is None


async def test_after_five_minutes_it_is_masked_again(
    framework: str, harness: Harness | None, fake_kratos: FakeKratos
) -> None:
    bank = await account(framework, harness, fake_kratos.session("aal2", authenticated_at=301))
    assert _pages.MASKED_IBAN in bank.text
    assert bank.label == "Reveal (asks for your authenticator)"
    _, query = back(bank.href)
    assert query["aal"] == ["aal2"] and query["refresh"] == ["true"]


async def test_one_request_leaves_nothing_for_the_next(fake_kratos: FakeKratos) -> None:
    # Starlette's TemplateResponse adds the request and the template globals to the dict
    # it is given: a dict shared between requests would hand one request's answers (an
    # aal2 "allows") to the next, as once happened between two of the examples.
    starlette, flask = Harness("starlette", fake_kratos), Harness("flask", fake_kratos)
    try:
        assert (
            _pages.IBAN in (await account("starlette", starlette, fake_kratos.session("aal2"))).text
        )
        bank = await account("flask", flask, fake_kratos.session("aal1", totp=True))
        assert _pages.MASKED_IBAN in bank.text
    finally:
        await starlette.close()
        await flask.close()

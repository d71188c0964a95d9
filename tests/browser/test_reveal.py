"""Step-up inside a page (SPEC §5d) in a real browser, on every framework's demo.

The Account page (aal1) shows bank details masked, with a link that steps up and comes
back to the same page: ada reveals her IBAN with a real TOTP code, Kratos's clock moves
past the 5 minutes, the IBAN is masked again and she verifies again; bob, who has no
second factor, is offered to set one up, and after pairing sees his.

The app reaches Kratos at an internal URL (``http://localhost:<port>``) while browsers use
``http://127.0.0.1:<port>``: no request, redirect or page may carry the internal one.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from examples import _pages
from kratos_aal._demo import FRAMEWORKS, Demo, run_demo

from . import test_walkthrough as walkthrough
from .test_walkthrough import DJANGO_DB, Walk, code_at, users

# The walk-through's fixtures: one Chromium for the module, and Django's database calls
# beside Playwright's event loop.
browser = walkthrough.browser
blocking_calls_beside_playwright = walkthrough.blocking_calls_beside_playwright


@pytest.fixture(
    params=[pytest.param(f, marks=DJANGO_DB) if f == "django" else f for f in FRAMEWORKS]
)
def demo(request: pytest.FixtureRequest) -> Iterator[Demo]:
    with run_demo(
        request.param, port=0, kratos_port=0, internal_kratos_host="localhost"
    ) as running:
        yield running


class Watched(Walk):
    """A walk that keeps every URL the browser met and every app page it saw."""

    def __init__(self, browser: Any, name: str, demo: Demo) -> None:
        super().__init__(browser, name, demo.app_url, demo.kratos_url)
        self.internal = demo.kratos_url.replace("127.0.0.1", "localhost")
        self.met: list[str] = []
        self.page.on("request", lambda request: self.met.append(request.url))
        self.page.on(
            "response", lambda response: self.met.append(response.headers.get("location", ""))
        )

    def bank(self) -> str:
        html = str(self.page.content())
        self.met.append(html)
        return self.text("section.bank")

    def reveal_link(self) -> tuple[str, str]:
        link = self.page.locator("section.bank a.reveal")
        return str(link.inner_text()), str(link.get_attribute("href"))

    def nothing_internal(self) -> None:
        leaked = [text[:200] for text in self.met if self.internal in text]
        assert leaked == [], leaked
        assert any(self.kratos in text for text in self.met)  # it did see Kratos's URLs


def test_reveal_inside_the_page(browser: Any, demo: Demo) -> None:
    s = "/" if demo.framework == "django" else ""
    ada, bob = users(demo)
    assert ada.totp_secret is not None
    walk = Watched(browser, f"{demo.framework}-reveal", demo)
    page = walk.page
    try:
        with walk.step("masked-at-aal1"):
            page.goto(f"{demo.app_url}/account{s}")
            walk.sign_in(ada)
            walk.on_app(f"/account{s}")
            bank = walk.bank()
            assert _pages.MASKED_IBAN in bank and _pages.IBAN not in bank
            label, href = walk.reveal_link()
            assert label == "Reveal (asks for your authenticator)"
            assert href.startswith(f"{demo.kratos_url}/self-service/login/browser?aal=aal2&")

        with walk.step("reveal"):  # her code, and back on the same page
            page.click("text=Reveal (asks for your authenticator)")
            walk.on_kratos("login")
            assert page.locator("input[name=totp_code]").is_visible()
            walk.enter_code(code_at(demo, ada.totp_secret))
            walk.on_app(f"/account{s}")
            bank = walk.bank()
            assert _pages.IBAN in bank and "in the last 5 minutes" in bank
            assert walk.who().startswith("ada@example.com · Signed in at aal2")

        with walk.step("clock"):  # 10 minutes on: the IBAN is masked again
            page.click("nav >> text=Home")
            page.click("text=Demo: move Kratos's clock 10 minutes on")
            walk.on_app("/?clock=moved")
            assert "Account masks the bank details again" in walk.text(".note")
            page.click("nav >> text=Account (aal1)")
            walk.on_app(f"/account{s}")
            bank = walk.bank()
            assert _pages.MASKED_IBAN in bank and _pages.IBAN not in bank
            label, href = walk.reveal_link()
            assert label == "Reveal (asks for your authenticator)"
            assert "refresh=true" in href

        with walk.step("re-verify"):
            page.click("text=Reveal (asks for your authenticator)")
            walk.on_kratos("login")
            walk.enter_code(code_at(demo, ada.totp_secret))
            walk.on_app(f"/account{s}")
            assert _pages.IBAN in walk.bank()

        with walk.step("sign-out"):
            page.click(".who >> text=Sign out")
            walk.on_app("/")
            assert walk.who() == "Not signed in."

        with walk.step("bob-is-offered-enrollment"):
            page.goto(f"{demo.app_url}/account{s}")
            walk.sign_in(bob)
            walk.on_app(f"/account{s}")
            bank = walk.bank()
            assert _pages.MASKED_IBAN in bank
            label, href = walk.reveal_link()
            assert label == "Set up an authenticator to reveal"
            assert href.startswith(f"{demo.kratos_url}/self-service/settings/browser?")

        with walk.step("bob-pairs-and-sees"):  # not a dead end: pairing, then the IBAN
            page.click("text=Set up an authenticator to reveal")
            walk.on_kratos("settings")
            assert page.locator("img#totp_qr").is_visible()
            secret = walk.text("#totp_secret_key").strip()
            walk.enter_code(code_at(demo, secret))
            walk.on_app(f"/account{s}")
            assert _pages.IBAN in walk.bank()
            assert walk.who().startswith("bob@example.com · Signed in at aal2")

        with walk.step("nothing-internal"):
            walk.nothing_internal()
            assert re.match(r"http://localhost:\d+$", walk.internal)
    finally:
        walk.close()

"""The demo in a real browser: enrollment, step-up, re-authentication, and a JSON fetch.

Debian's Chromium, driven by Playwright. Screenshots of every step land in
``test-artifacts/walkthrough/``. Without Chromium the test is skipped outside CI and
fails in CI (``CI=true``), where ``.ci/run`` installs it.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyotp
import pytest

from kratos_aal._demo import Demo, run_demo

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "walkthrough"
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-sync",
    "--disable-background-networking",
    "--disable-component-update",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"Chromium is missing at {CHROMIUM}: .ci/run installs Debian's chromium")
        pytest.skip("Chromium is missing: apt-get install chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield launched
        launched.close()


@pytest.fixture
def demo() -> Iterator[Demo]:
    with run_demo("starlette", port=0, kratos_port=0) as running:
        yield running


class Walk:
    def __init__(self, page: Any, demo: Demo) -> None:
        self.page, self.demo, self.step = page, demo, 0
        shutil.rmtree(SHOTS, ignore_errors=True)
        SHOTS.mkdir(parents=True)

    def shot(self, name: str) -> None:
        self.step += 1
        self.page.screenshot(path=str(SHOTS / f"{self.step:02d}-{name}.png"), full_page=True)

    def at(self, url: str) -> None:
        assert self.page.url == url, f"expected {url}, at {self.page.url}"

    def sign_in(self, email: str, password: str) -> None:
        assert self.page.url.startswith(f"{self.demo.kratos_url}/ui/login?flow=")
        assert self.page.locator("h1").inner_text() == "Sign in"
        self.page.fill("input[name=identifier]", email)
        self.page.fill("input[name=password]", password)
        self.shot("sign-in")
        self.page.click("button[name=method][value=password]")

    def code(self, secret: str) -> str:
        return pyotp.TOTP(secret).at(self.demo.fake.clock.now())


def test_step_up_story_in_chromium(browser: Any, demo: Demo) -> None:
    bob = next(u for u in demo.users if u.totp_secret is None)
    app = demo.app_url
    page = browser.new_page()
    walk = Walk(page, demo)

    # 1. The home page is public.
    page.goto(f"{app}/")
    assert "Not signed in" in page.inner_text(".who")
    walk.shot("home")

    # 2. Bob, who has no second factor, opens the aal2 page: log in, then pair TOTP.
    page.goto(f"{app}/billing")
    walk.sign_in(bob.email, bob.password)
    page.wait_for_url(f"{demo.kratos_url}/ui/settings?flow=*")
    assert page.locator("h1").inner_text() == "Account settings"
    assert page.locator("img#totp_qr").is_visible()
    secret = page.inner_text("#totp_secret_key").strip()
    walk.shot("pair-totp")
    page.fill("input[name=totp_code]", walk.code(secret))
    page.click("button[name=method][value=totp]")
    page.wait_for_url(f"{app}/billing")
    assert "You used a second factor (aal2)" in page.inner_text("body")
    assert "aal2" in page.inner_text(".who")
    walk.shot("billing-after-enrollment")

    # 3. Sign out, sign in again with the password only: an aal1 session.
    page.click("text=Sign out")
    page.wait_for_url(f"{app}/")
    assert "Not signed in" in page.inner_text(".who")
    walk.shot("signed-out")
    page.goto(f"{app}/account")
    walk.sign_in(bob.email, bob.password)
    page.wait_for_url(f"{app}/account")
    assert "aal1" in page.inner_text(".who")
    walk.shot("account-aal1")

    # 4. A JSON fetch from the page to an aal2 API: Kratos's 403 envelope, no redirect.
    answer = page.evaluate(
        """async () => {
            const reply = await fetch('/api/balance', {headers: {Accept: 'application/json'}});
            return {status: reply.status, redirected: reply.redirected, body: await reply.json()};
        }"""
    )
    assert answer["status"] == 403 and not answer["redirected"]
    assert answer["body"]["error"]["id"] == "session_aal2_required"
    assert answer["body"]["redirect_browser_to"].startswith(
        f"{demo.kratos_url}/self-service/login/browser?aal=aal2&return_to="
    )

    # 5. The aal2 page asks for the TOTP code (step-up) and lands back there.
    page.goto(f"{app}/billing")
    page.wait_for_url(f"{demo.kratos_url}/ui/login?flow=*")
    assert page.locator("h1").inner_text() == "Second factor"
    assert "Please complete the second authentication challenge." in page.inner_text("body")
    walk.shot("step-up")
    page.fill("input[name=totp_code]", walk.code(secret))
    page.click("button[name=method][value=totp]")
    page.wait_for_url(f"{app}/billing")
    assert "aal2" in page.inner_text(".who")
    walk.shot("billing-after-step-up")

    # 6. The max_age page: fine now, and once the clock moves past 5 minutes, asked again.
    page.goto(f"{app}/billing/transfer")
    assert "Second factor used in the last 5 minutes." in page.inner_text("body")
    demo.fake.clock.advance(301)
    page.goto(f"{app}/billing/transfer")
    page.wait_for_url(f"{demo.kratos_url}/ui/login?flow=*")
    assert page.locator("h1").inner_text() == "Confirm it's you"
    walk.shot("re-authenticate")
    page.fill("input[name=totp_code]", walk.code(secret))
    page.click("button[name=method][value=totp]")
    page.wait_for_url(f"{app}/billing/transfer")
    assert "Second factor used in the last 5 minutes." in page.inner_text("body")
    walk.shot("transfer-after-re-authentication")
    page.close()

"""A live page in a real browser (SPEC §5c): a count pushed over server-sent events stops,
with a link to sign in again, when ada signs out in another tab.

On the Starlette and FastAPI demos (the frameworks whose event streams kratos-aal watches).
The app reaches Kratos at an internal URL (``http://localhost:<port>``), browsers at
``http://127.0.0.1:<port>``: the link the stream's last event carries is the browser's.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from kratos_aal._demo import Demo, run_demo

from . import test_walkthrough as walkthrough
from .test_walkthrough import Walk, users

browser = walkthrough.browser
blocking_calls_beside_playwright = walkthrough.blocking_calls_beside_playwright

#: Generous for a busy machine: the close itself takes a second or two (one check after
#: the logout's hold), and the count ticks twice a second.
WAIT_MS = 20_000


@pytest.fixture(params=["starlette", "fastapi"])
def demo(request: pytest.FixtureRequest) -> Iterator[Demo]:
    with run_demo(
        request.param, port=0, kratos_port=0, internal_kratos_host="localhost"
    ) as running:
        yield running


def counted(walk: Walk) -> int:
    return int(walk.text("#count"))


def test_the_live_count_stops_when_ada_signs_out_in_another_tab(browser: Any, demo: Demo) -> None:
    ada, _ = users(demo)
    walk = Walk(browser, f"{demo.framework}-live", demo.app_url, demo.kratos_url)
    page = walk.page
    internal = demo.kratos_url.replace("127.0.0.1", "localhost")
    try:
        with walk.step("live"):
            page.goto(f"{demo.app_url}/")
            page.click("ol >> text=Live")
            walk.sign_in(ada)
            walk.on_app("/account/live")
            page.wait_for_function("Number(document.querySelector('#count').textContent) >= 3")
            assert walk.text("#live-state") == "live"
            assert page.locator("#live-ended").is_hidden()

        with walk.step("sign-out-in-another-tab"):
            other = walk.context.new_page()
            other.goto(f"{demo.app_url}/")
            other.click(".who >> text=Sign out")
            other.wait_for_url(f"{demo.app_url}/")
            assert other.inner_text(".who") == "Not signed in."
            other.close()

        with walk.step("the-count-stops"):
            page.wait_for_selector("#live-again", timeout=WAIT_MS)
            assert walk.text("#live-state") == "stopped"
            assert "your session no longer allows this page" in walk.text("#live-ended")
            link = page.locator("#live-again")
            assert link.inner_text() == "Sign in again"
            href = str(link.get_attribute("href"))
            parts = urlsplit(href)
            assert f"{parts.scheme}://{parts.netloc}{parts.path}" == (
                f"{demo.kratos_url}/self-service/login/browser"
            )
            assert parse_qs(parts.query)["return_to"] == [f"{demo.app_url}/account/live"]
            assert internal not in page.content()
            stopped = counted(walk)
            page.wait_for_timeout(1_500)  # three ticks, were it still open
            assert counted(walk) == stopped

        with walk.step("sign-in-again"):
            page.click("#live-again")
            walk.sign_in(ada)
            walk.on_app("/account/live")
            page.wait_for_function("Number(document.querySelector('#count').textContent) >= 2")
            assert walk.text("#live-state") == "live"
    finally:
        walk.close()

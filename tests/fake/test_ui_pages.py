"""The fake's self-service pages, as a person reads them (issue 12, fake side).

Kratos leaves these pages to a UI app, so nothing here is Kratos behaviour: it is what
a newcomer running the demo or ``kratos-aal fake`` needs to find their way.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from kratos_aal.testing import FakeKratos

APP_HOME = "http://127.0.0.1:8000/"


@pytest.fixture
def fake() -> FakeKratos:
    return FakeKratos(app_url=APP_HOME)


@pytest.fixture
def browser(fake: FakeKratos) -> Iterator[httpx.Client]:
    with httpx.Client(transport=fake.transport(), base_url=fake.public_url) as client:
        yield client


def open_settings(fake: FakeKratos, browser: httpx.Client, **params: str) -> str:
    session = fake.session("aal1")
    browser.cookies.update(session.cookies)
    started = browser.get("/self-service/settings/browser", params=params)
    page = browser.get(started.headers["Location"])
    assert page.status_code == 200
    return page.text


def test_pairing_button_says_what_it_does(fake: FakeKratos, browser: httpx.Client) -> None:
    page = open_settings(fake, browser)
    assert re.search(r'<button[^>]*value="totp">Verify and continue</button>', page)
    # The flow's JSON keeps Kratos's own label.
    flow_id = browser.get("/self-service/settings/browser").headers["Location"].split("=")[1]
    flow = browser.get("/self-service/settings/flows", params={"id": flow_id}).json()
    labels = [
        n["meta"]["label"]["text"]
        for n in flow["ui"]["nodes"]
        if n["attributes"].get("value") == "totp"
    ]
    assert labels == ["Save"]


def test_secret_does_not_break_mid_string(fake: FakeKratos, browser: httpx.Client) -> None:
    page = open_settings(fake, browser)
    style = re.search(r"code\.secret \{([^}]*)\}", page)
    assert style is not None
    assert "white-space: nowrap" in style[1] and "break-all" not in style[1]


def test_settings_without_return_to_links_back_to_the_app(
    fake: FakeKratos, browser: httpx.Client
) -> None:
    assert f'href="{APP_HOME}"' in open_settings(fake, browser)


def test_settings_without_any_app_links_to_the_welcome_page() -> None:
    fake = FakeKratos()
    with httpx.Client(transport=fake.transport(), base_url=fake.public_url) as browser:
        page = open_settings(fake, browser)
    assert f'href="{fake.ui_url}/welcome"' in page


def second_factor_pages(fake: FakeKratos, browser: httpx.Client, identity: Any = None) -> list[str]:
    """Return the step-up page and the re-authentication page, as a browser gets them."""
    session = fake.session("aal1", totp=True, identity=identity)
    browser.cookies.update(session.cookies)
    pages = []
    for params in ({"aal": "aal2"}, {"aal": "aal2", "refresh": "true"}):
        started = browser.get("/self-service/login/browser", params=params)
        pages.append(browser.get(started.headers["Location"]).text)
    return pages


DEMO_NOTE = "For ada, that is the TOTP secret that kratos-aal demo"


def test_second_factor_pages_say_where_the_code_comes_from(
    fake: FakeKratos, browser: httpx.Client
) -> None:
    from kratos_aal._demo import demo_fake

    demo, _ = demo_fake(fake.public_url, APP_HOME, [], None)
    ada = next(i for i in demo.identities.values() if i.email == "ada@example.com")
    with httpx.Client(transport=demo.transport(), base_url=demo.public_url) as ada_browser:
        step_up, refresh = second_factor_pages(demo, ada_browser, identity=ada)
    assert "<h1>Second factor</h1>" in step_up and "<h1>Confirm it&#x27;s you</h1>" in refresh
    for page in (step_up, refresh):  # re-authentication asks for the same code
        assert "authenticator app paired with this account shows now" in page
        assert DEMO_NOTE in page
    # bob, once he paired a device of his own, is told nothing about ada's secret.
    bob = next(i for i in demo.identities.values() if i.email == "bob@example.com")
    with httpx.Client(transport=demo.transport(), base_url=demo.public_url) as bob_browser:
        for page in second_factor_pages(demo, bob_browser, identity=bob):
            assert "Signed in as <b>bob@example.com</b>" in page
            assert DEMO_NOTE not in page and "ada@" not in page and "For ada" not in page


def test_without_demo_users_no_page_mentions_them(fake: FakeKratos, browser: httpx.Client) -> None:
    for page in second_factor_pages(fake, browser):
        assert "authenticator app paired with this account shows now" in page
        assert DEMO_NOTE not in page and "ada@" not in page and "For ada" not in page


def test_bare_address_leads_to_the_welcome_page(fake: FakeKratos, browser: httpx.Client) -> None:
    answer = browser.get("/")
    assert (answer.status_code, answer.headers["Location"]) == (303, f"{fake.ui_url}/welcome")
    welcome = browser.get(answer.headers["Location"])
    assert welcome.status_code == 200
    assert f'<a href="{APP_HOME}">Back to the app</a>' in welcome.text
    browser.cookies.update(fake.session("aal1").cookies)  # signed in, the way back is there too
    assert f'<a href="{APP_HOME}">Back to the app</a>' in browser.get("/ui/welcome").text


def test_welcome_page_without_an_app_offers_sign_in_only() -> None:
    fake = FakeKratos()
    with httpx.Client(transport=fake.transport(), base_url=fake.public_url) as browser:
        welcome = browser.get("/ui/welcome").text
    assert "Back to the app" not in welcome and "Sign in</a>" in welcome


def test_favicon_is_served(browser: httpx.Client) -> None:
    answer = browser.get("/favicon.ico")
    assert answer.status_code == 200
    assert answer.headers["Content-Type"] == "image/svg+xml"
    assert answer.content.startswith(b"<svg")


def test_the_sign_in_page_labels_the_identifier_email(
    fake: FakeKratos, browser: httpx.Client
) -> None:
    started = browser.get("/self-service/login/browser")
    page = browser.get(started.headers["Location"]).text
    assert re.search(r"<label[^>]*>\s*Email", page), page
    assert ">ID<" not in page
    # The flow's JSON keeps Kratos's own label.
    flow_id = started.headers["Location"].split("flow=")[1]
    flow = browser.get("/self-service/login/flows", params={"id": flow_id}).json()
    labels = [n["meta"].get("label", {}).get("text") for n in flow["ui"]["nodes"]]
    assert "ID" in labels

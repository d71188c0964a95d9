"""The demo in a real browser, for every framework: the whole story a newcomer follows.

Debian's Chromium, driven by Playwright, one browser for the module. A failing step saves
a screenshot under ``test-artifacts/walkthrough/<framework>/``. Without Chromium the tests
are skipped outside CI and fail in CI (``CI=true``), where ``.ci/run`` installs it.

On FakeKratos's pages only what is stable is asserted (the form fields, where the browser
lands); on the app's pages, what a person reads: who is signed in, and why they are there.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pyotp
import pytest

from kratos_aal._demo import FRAMEWORK_NAMES, FRAMEWORKS, Demo, DemoUser, run_demo
from kratos_aal.testing import reserve_port

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# KRATOS_AAL_ARTIFACTS: where a run keeps its screenshots (.ci/run gives each run its own).
SHOTS = Path(os.environ.get("KRATOS_AAL_ARTIFACTS") or ROOT / "test-artifacts") / "walkthrough"
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


class Walk:
    """One person's browser on one app: steps that leave a screenshot when they fail."""

    def __init__(self, browser: Any, name: str, app_url: str, kratos_url: str) -> None:
        self.context = browser.new_context()
        self.page = self.context.new_page()
        self.page.set_default_timeout(15_000)
        self.app, self.kratos = app_url, kratos_url
        self.shots = SHOTS / name
        shutil.rmtree(self.shots, ignore_errors=True)
        self.count = 0

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        self.count += 1
        try:
            yield
        except BaseException:
            self.shots.mkdir(parents=True, exist_ok=True)
            path = self.shots / f"{self.count:02d}-{name}-FAILED.png"
            self.page.screenshot(path=str(path), full_page=True)
            raise

    def close(self) -> None:
        self.context.close()

    def text(self, selector: str = "body") -> str:
        return str(self.page.inner_text(selector))

    def who(self) -> str:
        return self.text(".who")

    def on_kratos(self, ui_page: str) -> None:
        self.page.wait_for_url(re.compile(re.escape(f"{self.kratos}/ui/{ui_page}?flow=") + ".*"))

    def on_app(self, path: str) -> None:
        self.page.wait_for_url(f"{self.app}{path}")

    def sign_in(self, user: DemoUser) -> None:
        self.on_kratos("login")
        self.page.fill("input[name=identifier]", user.email)
        self.page.fill("input[name=password]", user.password)
        self.page.click("button[name=method][value=password]")

    def enter_code(self, code: str) -> None:
        self.page.fill("input[name=totp_code]", code)
        self.page.click("button[name=method][value=totp]")

    def json_fetch(self, path: str) -> dict[str, Any]:
        answer: dict[str, Any] = self.page.evaluate(
            """async (path) => {
                const reply = await fetch(path, {headers: {Accept: 'application/json'}});
                return {status: reply.status, redirected: reply.redirected, body: await reply.json()};
            }""",
            path,
        )
        return answer


@pytest.fixture(scope="module", autouse=True)
def blocking_calls_beside_playwright() -> Iterator[None]:
    """Let this module's own database calls run while Playwright's event loop is running.

    Playwright's loop runs in the test's thread, so Django takes the test database's
    set-up and flush for calls from async code; they are the test's blocking calls. Module
    scope: set before the function-scoped database fixtures, and only for this module.
    """
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    yield
    if previous is None:
        del os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"]
    else:
        os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


# The Django demo's users (request.user) live in the database: a test database, emptied
# after each test.
DJANGO_DB = pytest.mark.django_db(transaction=True)


@pytest.fixture(
    params=[pytest.param(f, marks=DJANGO_DB) if f == "django" else f for f in FRAMEWORKS]
)
def demo(request: pytest.FixtureRequest) -> Iterator[Demo]:
    with run_demo(request.param, port=0, kratos_port=0) as running:
        yield running


def users(demo: Demo) -> tuple[DemoUser, DemoUser]:
    ada = next(u for u in demo.users if u.totp_secret)
    bob = next(u for u in demo.users if u.totp_secret is None)
    return ada, bob


def code_at(demo: Demo, secret: str) -> str:
    """A real TOTP code, as a phone would show it at the fake's (movable) time."""
    return pyotp.TOTP(secret).at(demo.fake.clock.now())


def test_the_whole_story_in_chromium(browser: Any, demo: Demo) -> None:
    s = "/" if demo.framework == "django" else ""  # Django's paths end with a slash
    name = FRAMEWORK_NAMES[demo.framework]
    ada, bob = users(demo)
    assert ada.totp_secret is not None
    walk = Walk(browser, demo.framework, demo.app_url, demo.kratos_url)
    page = walk.page
    try:
        with walk.step("home"):
            page.goto(f"{demo.app_url}/")
            assert f"A {name} app protected by kratos-aal" in walk.text()
            assert walk.who() == "Not signed in."
            assert "curl -H 'Accept: application/json'" in walk.text("pre")
            # The whole command is in sight (Django's trailing slash too), not scrolled off.
            assert page.eval_on_selector("pre", "e => e.scrollWidth <= e.clientWidth")

        with walk.step("login"):  # Ada opens the aal1 page: a plain login, no aal=aal2
            page.click("nav >> text=Account (aal1)")
            walk.sign_in(ada)
            walk.on_app(f"/account{s}")
            assert "A password is enough here (aal1)." in walk.text()
            who = walk.who()
            assert who.startswith("ada@example.com · Signed in at aal1 with password (just now)")
            assert "totp" not in who and "Sign out" in who

        with walk.step("json-client"):  # an API answers the page's fetch with Kratos's 403
            answer = walk.json_fetch(f"/api/balance{s}")
            assert answer["status"] == 403 and not answer["redirected"]
            assert answer["body"]["error"]["id"] == "session_aal2_required"
            assert answer["body"]["redirect_browser_to"].startswith(
                f"{demo.kratos_url}/self-service/login/browser?aal=aal2&return_to="
            )

        if demo.framework == "django":
            with walk.step("drf-needs-aal2"):  # the DRF ViewSet: JSON 403, browsable 303
                answer = walk.json_fetch("/api/accounts/")
                assert answer["status"] == 403 and not answer["redirected"]
                assert answer["body"]["error"]["id"] == "session_aal2_required"
                page.goto(f"{demo.app_url}/api/accounts/")
                walk.on_kratos("login")  # the browsable API is sent to step-up like a page
                assert page.locator("input[name=totp_code]").is_visible()
                page.goto(f"{demo.app_url}/")  # she declines, for now

        with walk.step("step-up"):  # the aal2 page asks for her code, then lets her in
            page.click("nav >> text=Billing (aal2)")
            walk.on_kratos("login")
            assert page.locator("input[name=totp_code]").is_visible()
            assert page.locator("input[name=password]").count() == 0
            walk.enter_code(code_at(demo, ada.totp_secret))
            walk.on_app(f"/billing{s}")
            assert "You used a second factor (aal2)." in walk.text()
            assert re.fullmatch(
                r"ada@example\.com · Signed in at aal2 with password \((just now|\d min ago)\), "
                r"totp \(just now\) · Account settings · Sign out",
                walk.who(),
            ), walk.who()
            answer = walk.json_fetch(f"/api/balance{s}")
            assert (answer["status"], answer["body"]["balance"]) == (200, 42)

        if demo.framework == "django":
            with walk.step("request-user"):  # the Django user linked to her identity
                page.goto(f"{demo.app_url}/user/")
                assert "You, as Django sees you" in walk.text("h1")
                table = walk.text("table")
                assert "ada@example.com" in table and "Django user" in table
                assert walk.who().startswith("ada@example.com · Signed in at aal2")

            with walk.step("drf-at-aal2"):
                page.goto(f"{demo.app_url}/api/accounts/")
                walk.on_app("/api/accounts/")
                assert "Checking" in walk.text()  # DRF's browsable API, with the data
                styled = page.evaluate(
                    """() => document.querySelectorAll('link[rel=stylesheet]').length > 0 &&
                        [...document.querySelectorAll('link[rel=stylesheet]')].every(
                            (link) => link.sheet !== null && link.sheet.cssRules.length > 0)"""
                )
                assert styled, "the browsable API's stylesheets did not load"
                page.goto(f"{demo.app_url}/api/")  # the API's index links to every endpoint
                assert "/api/payouts/" in walk.text()
                answer = walk.json_fetch("/api/accounts/")
                assert answer["status"] == 200 and answer["body"]["aal"] == "aal2"
                page.goto(f"{demo.app_url}/")  # back to the app's pages and their links

        with walk.step("fresh-enough"):
            page.click("nav >> text=Transfer (aal2, 5 min)")
            walk.on_app(f"/billing/transfer{s}")
            assert "Second factor used in the last 5 minutes." in walk.text()

        with walk.step("clock"):  # the demo's button moves Kratos's clock, and says so
            page.click("nav >> text=Home")
            page.click("text=Demo: move Kratos's clock 10 minutes on")
            walk.on_app("/?clock=moved")
            assert "Kratos's clock moved 10 minutes on" in walk.text(".note")
            # Told by Kratos's clock: older now, never ahead of the user's own clock.
            assert re.search(r"totp \(1\d min ago\)", walk.who()), walk.who()

        with walk.step("re-authentication"):  # older than 5 minutes: Kratos asks again
            page.click("nav >> text=Transfer (aal2, 5 min)")
            walk.on_kratos("login")
            assert page.locator("input[name=totp_code]").is_visible()
            walk.enter_code(code_at(demo, ada.totp_secret))
            walk.on_app(f"/billing/transfer{s}")
            assert "Second factor used in the last 5 minutes." in walk.text()
            who = walk.who()
            assert who.count("totp (") == 1 and who.count("password (") == 1, who
            assert "totp (just now)" in who and re.search(r"password \(1\d min ago\)", who), who

        with walk.step("sign-out"):
            page.click(".who >> text=Sign out")
            walk.on_app("/")
            assert walk.who() == "Not signed in."

        with walk.step("enrollment"):  # Bob has no second factor: he pairs one, in place
            page.click("nav >> text=Billing (aal2)")
            walk.sign_in(bob)
            walk.on_kratos("settings")
            assert page.locator("img#totp_qr").is_visible()
            secret = walk.text("#totp_secret_key").strip()
            walk.enter_code(code_at(demo, secret))
            walk.on_app(f"/billing{s}")
            assert "You used a second factor (aal2)." in walk.text()
            assert walk.who().startswith("bob@example.com · Signed in at aal2 with password")

        with walk.step("sign-out-again"):
            page.click(".who >> text=Sign out")
            walk.on_app("/")
            assert walk.who() == "Not signed in."
            page.goto(f"{demo.app_url}/billing{s}")  # signed out for real: Kratos asks again
            walk.on_kratos("login")
            assert page.locator("input[name=identifier]").is_visible()
    finally:
        walk.close()


def test_unlink_in_chromium(browser: Any, demo: Demo) -> None:
    """Ada unlinks her authenticator app; the app then sends her to pair one again.

    Depends on FakeKratos accepting ``totp_unlink=true`` without ``method=totp`` (as
    Kratos does; issue 12, item 3).
    """
    s = "/" if demo.framework == "django" else ""
    ada, _ = users(demo)
    assert ada.totp_secret is not None
    walk = Walk(browser, f"{demo.framework}-unlink", demo.app_url, demo.kratos_url)
    page = walk.page
    try:
        with walk.step("sign-in-at-aal2"):
            page.goto(f"{demo.app_url}/billing{s}")
            walk.sign_in(ada)
            walk.on_kratos("login")
            walk.enter_code(code_at(demo, ada.totp_secret))
            walk.on_app(f"/billing{s}")

        with walk.step("unlink"):
            page.goto(f"{demo.kratos_url}/self-service/settings/browser?return_to={demo.app_url}/")
            walk.on_kratos("settings")
            page.click("button[name=totp_unlink]")
            page.wait_for_url(f"{demo.app_url}/")
            identity = next(i for i in demo.fake.identities.values() if i.email == ada.email)
            assert identity.totp_secret is None

        with walk.step("pair-again"):  # a fresh aal1 login now leads to enrollment
            page.click(".who >> text=Sign out")
            walk.on_app("/")
            page.click("nav >> text=Billing (aal2)")
            walk.sign_in(ada)
            walk.on_kratos("settings")
            assert page.locator("img#totp_qr").is_visible()
    finally:
        walk.close()


# ------------------------------------------------------------------ `kratos-aal fake` + an example


def docstring_commands(module: str) -> list[str]:
    """The shell commands an example's docstring gives to run it against `kratos-aal fake`."""
    import importlib

    doc = importlib.import_module(module).__doc__ or ""
    return [line.strip() for line in doc.splitlines() if line.startswith("    ")]


def split_command(command: str) -> tuple[dict[str, str], list[str]]:
    """Split ``A=1 B=2 program args`` into the environment it sets and the program's words."""
    words = shlex.split(command)
    assignments = {}
    while "=" in words[0]:
        key, value = words.pop(0).split("=", 1)
        assignments[key] = value
    return assignments, words


@pytest.fixture
def fake_and_fastapi() -> Iterator[tuple[str, str]]:
    """Run FakeKratos and the FastAPI example as two processes, as the docstring says."""
    commands = docstring_commands("examples.fastapi_app")
    assert len(commands) == 2, commands
    assert commands[0].startswith("kratos-aal fake ")
    assert "uvicorn examples.fastapi_app:app" in commands[1]
    # The docstring's ports (4433, 8000, and the admin API's default 4434) may be taken on
    # a shared machine: free ones instead.
    ports = []
    for _ in range(3):
        sock = reserve_port()
        ports.append(sock.getsockname()[1])
        sock.close()
    kratos_port, app_port, admin_port = ports
    bin_dir = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
    processes = []
    try:
        for command in commands:
            command = command.replace("4433", str(kratos_port)).replace("8000", str(app_port))
            assignments, words = split_command(command)
            if words[:2] == ["kratos-aal", "fake"]:
                words += ["--admin-port", str(admin_port)]
            processes.append(
                subprocess.Popen(
                    words,
                    cwd=ROOT,
                    env={**env, **assignments},
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    start_new_session=True,
                )
            )
        kratos_url, app_url = (f"http://127.0.0.1:{p}" for p in (kratos_port, app_port))
        for url in (f"{kratos_url}/health/alive", f"{app_url}/"):
            wait_for(url)
        yield kratos_url, app_url
    finally:
        for process in processes:
            os.killpg(process.pid, signal.SIGINT)
            try:
                process.wait(20)
            finally:
                if process.poll() is None:
                    os.killpg(process.pid, signal.SIGKILL)  # never leave a server behind
                    process.wait()


def wait_for(url: str) -> None:
    for _ in range(300):
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise AssertionError(f"{url} never answered")


def test_fastapi_example_against_kratos_aal_fake(
    browser: Any, fake_and_fastapi: tuple[str, str]
) -> None:
    from kratos_aal._demo import ADA_TOTP_SECRET

    kratos_url, app_url = fake_and_fastapi
    walk = Walk(browser, "fastapi-with-kratos-aal-fake", app_url, kratos_url)
    page = walk.page
    try:
        with walk.step("home"):
            page.goto(f"{app_url}/")
            assert "A FastAPI app protected by kratos-aal" in walk.text()
            assert walk.who() == "Not signed in."
            assert page.locator("text=Demo: move Kratos's clock").count() == 0  # demo only

        with walk.step("login-and-step-up"):  # nobody moves this fake's clock: real time
            page.click("nav >> text=Billing (aal2)")
            walk.sign_in(DemoUser("ada@example.com", "ada-demo-password", ADA_TOTP_SECRET))
            walk.on_kratos("login")
            walk.enter_code(pyotp.TOTP(ADA_TOTP_SECRET).now())
            walk.on_app("/billing")
            assert "You used a second factor (aal2)." in walk.text()
            assert walk.who().startswith("ada@example.com · Signed in at aal2")

        with walk.step("sign-out"):
            page.click(".who >> text=Sign out")
            walk.on_app("/")
            assert walk.who() == "Not signed in."
    finally:
        walk.close()

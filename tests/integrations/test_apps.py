"""Every SPEC §3 outcome and §4 response shape, through Starlette, FastAPI and Flask."""

from __future__ import annotations

import html
import re
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from examples import _pages
from kratos_aal._web import MAX_HOPS
from kratos_aal.testing import FakeKratos, FakeSession

from .conftest import Harness, Reply

WHOAMI = "/sessions/whoami"
KRATOS = "http://127.0.0.1:4433"
JSON = {"Accept": "application/json"}
CHROME = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}


def browser(session: FakeSession | None = None, **extra: str) -> dict[str, str]:
    headers = dict(CHROME)
    if session is not None:
        headers["Cookie"] = session.cookie_header
    headers.update(extra)
    return headers


def params(url: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(url).query)


def path_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


# ----------------------------------------------------------------------------- browsers: 303


async def test_public_page_costs_no_kratos_call(app: Harness, fake: FakeKratos) -> None:
    reply = await app.get("/", browser())
    assert reply.status == 200
    if app.framework != "starlette":  # the Starlette home page asks who is signed in
        assert fake.calls[WHOAMI] == 0


async def test_no_session_is_sent_to_login(app: Harness, fake: FakeKratos) -> None:
    reply = await app.get("/billing", browser())
    assert reply.status == 303
    assert path_of(reply.location) == f"{KRATOS}/self-service/login/browser"
    assert params(reply.location) == {"return_to": ["http://testserver/billing"]}
    assert fake.calls[WHOAMI] == 0  # no cookie, no call


async def test_unknown_cookie_is_sent_to_login(app: Harness, fake: FakeKratos) -> None:
    reply = await app.get("/billing?tab=2", browser(Cookie="ory_kratos_session=expired-or-forged"))
    assert reply.status == 303
    assert params(reply.location) == {"return_to": ["http://testserver/billing?tab=2"]}


async def test_aal2_session_is_allowed(app: Harness, fake: FakeKratos) -> None:
    reply = await app.get("/billing", browser(fake.session("aal2")))
    assert reply.status == 200
    assert b"aal2" in reply.body


async def test_aal1_page_allows_aal1(app: Harness, fake: FakeKratos) -> None:
    assert (await app.get("/account", browser(fake.session("aal1")))).status == 200
    assert (await app.get("/account", browser())).status == 303


async def test_aal1_with_second_factor_steps_up(app: Harness, fake: FakeKratos) -> None:
    reply = await app.get("/billing", browser(fake.session("aal1", totp=True)))
    assert reply.status == 303
    assert path_of(reply.location) == f"{KRATOS}/self-service/login/browser"
    assert params(reply.location) == {"aal": ["aal2"], "return_to": ["http://testserver/billing"]}


async def test_aal1_without_second_factor_enrolls(app: Harness, fake: FakeKratos) -> None:
    reply = await app.get("/billing", browser(fake.session("aal1")))
    assert reply.status == 303
    assert path_of(reply.location) == f"{KRATOS}/self-service/settings/browser"
    assert params(reply.location) == {"return_to": ["http://testserver/billing"]}


async def test_stale_aal2_reauthenticates(app: Harness, fake: FakeKratos) -> None:
    session = fake.session("aal2", authenticated_at=301)
    assert (await app.get("/billing", browser(session))).status == 200
    reply = await app.get("/billing/transfer", browser(session))
    assert reply.status == 303
    assert params(reply.location) == {
        "aal": ["aal2"],
        "refresh": ["true"],
        "return_to": ["http://testserver/billing/transfer"],
    }


async def test_kratos_down_is_503_never_login(app: Harness, fake: FakeKratos) -> None:
    fake.fail("status", status=500, times=None)
    reply = await app.get("/billing", browser(fake.session("aal2")))
    assert reply.status == 503
    assert reply.headers["Retry-After"] == "5"
    assert "location" not in reply.headers
    assert reply.headers["Content-Type"].startswith("text/html")
    assert b"try again" in reply.body.lower()


async def test_rate_limited_kratos_passes_retry_after_on(app: Harness, fake: FakeKratos) -> None:
    fake.fail("status", status=429, retry_after=17)
    reply = await app.get("/billing", browser(fake.session("aal2")))
    assert (reply.status, reply.headers["Retry-After"]) == (503, "17")


async def test_browser_url_is_where_browsers_go(make_app: Any) -> None:
    fake = FakeKratos(whoami_required_aal="aal1", public_url="http://kratos:4433")
    app = make_app(fake, browser_url="https://example.com/kratos")
    reply = await app.get("/billing", browser(fake.session("aal1", totp=True)))
    assert reply.location.startswith(
        "https://example.com/kratos/self-service/login/browser?aal=aal2&"
    )


async def test_highest_available_403_steps_up(make_app: Any) -> None:
    fake = FakeKratos(public_url="http://kratos:4433")  # Kratos's default required_aal
    app = make_app(fake, browser_url="http://127.0.0.1:4455")
    reply = await app.get("/account", browser(fake.session("aal1", totp=True)))
    assert reply.status == 303
    assert reply.location == (
        "http://127.0.0.1:4455/self-service/login/browser?aal=aal2&return_to=http%3A%2F%2Ftestserver%2Faccount"
    )


# ----------------------------------------------------------------------------- JSON, tokens, HTMX


OUTCOMES = [
    pytest.param("none", 401, "session_inactive", id="login"),
    pytest.param("aal1+totp", 403, "session_aal2_required", id="step-up"),
    pytest.param("aal1", 403, "session_aal2_enrollment_required", id="enroll"),
    pytest.param("stale", 403, "session_refresh_required", id="reauthenticate"),
    pytest.param("down", 503, "kratos_unavailable", id="unavailable"),
]


def arrange(fake: FakeKratos, state: str) -> FakeSession | None:
    if state == "none":
        return None
    if state == "aal1+totp":
        return fake.session("aal1", totp=True)
    if state == "stale":
        return fake.session("aal2", authenticated_at=3600)
    session = fake.session("aal2" if state == "down" else state)
    if state == "down":
        fake.fail("timeout", times=None)
    return session


def assert_envelope(reply: Any, status: int, error_id: str, return_to: str) -> None:
    assert reply.status == status
    assert reply.headers["Content-Type"].startswith("application/json")
    body = reply.json()
    assert set(body["error"]) == {"id", "code", "status", "reason", "message"}
    assert (body["error"]["id"], body["error"]["code"]) == (error_id, status)
    if status == 503:
        assert "redirect_browser_to" not in body
        assert reply.headers["Retry-After"] == "5"
    else:
        assert params(body["redirect_browser_to"])["return_to"] == [return_to]
        assert body["redirect_browser_to"].startswith(f"{KRATOS}/self-service/")
    assert "location" not in reply.headers
    assert "detail" not in body  # not FastAPI's envelope


@pytest.mark.parametrize(("state", "status", "error_id"), OUTCOMES)
async def test_json_clients_get_kratos_envelopes(
    app: Harness, fake: FakeKratos, state: str, status: int, error_id: str
) -> None:
    session = arrange(fake, state)
    headers = {**JSON, **({"Cookie": session.cookie_header} if session else {})}
    reply = await app.get("/billing/transfer", headers)
    assert_envelope(reply, status, error_id, "http://testserver/billing/transfer")


@pytest.mark.parametrize(("state", "status", "error_id"), [p for p in OUTCOMES if p.id != "login"])
async def test_token_clients_get_json_whatever_they_accept(
    app: Harness, fake: FakeKratos, state: str, status: int, error_id: str
) -> None:
    session = arrange(fake, state)
    assert session is not None
    reply = await app.get(
        "/billing/transfer", {**CHROME, "Authorization": f"Bearer {session.token}"}
    )
    assert_envelope(reply, status, error_id, "http://testserver/billing/transfer")


async def test_json_request_body_counts_as_json(app: Harness, fake: FakeKratos) -> None:
    session = fake.session("aal1", totp=True)
    headers = {"Cookie": session.cookie_header, "Content-Type": "application/json"}
    body = {"data": b"{}"} if app.framework == "flask" else {"content": b"{}"}
    reply = await app.request("POST", "/billing", headers, **body)
    assert reply.status == 403 and reply.json()["error"]["id"] == "session_aal2_required"


async def test_allowed_json_api(app: Harness, fake: FakeKratos) -> None:
    session = fake.session("aal2")
    reply = await app.get("/api/balance", {**JSON, "X-Session-Token": session.token})
    assert reply.status == 200
    assert reply.json() == {"balance": 42, "aal": "aal2"}  # the same body on every framework


async def test_htmx_gets_hx_redirect_back_to_the_page(app: Harness, fake: FakeKratos) -> None:
    session = fake.session("aal1", totp=True)
    reply = await app.get(
        "/billing",
        {
            "Cookie": session.cookie_header,
            "HX-Request": "true",
            "HX-Current-URL": "http://testserver/dashboard?view=1",
        },
    )
    assert reply.status == 403
    assert reply.json()["error"]["id"] == "session_aal2_required"
    assert params(reply.headers["HX-Redirect"])["return_to"] == [
        "http://testserver/dashboard?view=1"
    ]
    assert reply.headers["HX-Redirect"] == reply.json()["redirect_browser_to"]
    foreign = await app.get(
        "/billing",
        {
            "Cookie": session.cookie_header,
            "HX-Request": "true",
            "HX-Current-URL": "https://evil.example/",
        },
    )
    assert params(foreign.headers["HX-Redirect"])["return_to"] == ["http://testserver/billing"]


# ----------------------------------------------------------------------------- unsafe methods


async def test_post_is_not_run_and_returns_to_the_form(app: Harness, fake: FakeKratos) -> None:
    session = fake.session("aal1", totp=True)
    reply = await app.request(
        "POST",
        "/billing",
        browser(session, Referer="http://testserver/billing/form"),
        data={"amount": "100"},
    )
    assert reply.status == 303
    assert params(reply.location) == {
        "aal": ["aal2"],
        "return_to": ["http://testserver/billing/form"],
    }


@pytest.mark.parametrize(
    "referer", ["https://evil.example/x", "//evil.example", "javascript:alert(1)", ""]
)
async def test_post_without_same_origin_referer_returns_to_root(
    app: Harness, fake: FakeKratos, referer: str
) -> None:
    session = fake.session("aal1", totp=True)
    headers = browser(session, **({"Referer": referer} if referer else {}))
    reply = await app.request("DELETE" if app.framework == "flask" else "POST", "/billing", headers)
    assert reply.status in (303, 405)
    if reply.status == 303:
        assert params(reply.location)["return_to"] == ["http://testserver/"]


async def test_app_url_fixes_return_to(make_app: Any, fake: FakeKratos) -> None:
    app = make_app(fake, app_url="https://shop.example")
    reply = await app.get("/billing?x=1", browser())
    assert params(reply.location)["return_to"] == ["https://shop.example/billing?x=1"]
    post = await app.request("POST", "/billing", browser(fake.session("aal1", totp=True)))
    assert params(post.location)["return_to"] == ["https://shop.example"]


# ----------------------------------------------------------------------------- preflight, loops


@pytest.mark.parametrize("method", ["OPTIONS", "GET"])
async def test_preflight_headers_earn_no_exemption(
    app: Harness, fake: FakeKratos, method: str
) -> None:
    # Anyone can send these headers; without a session the protected handler never runs.
    preflight = {"Origin": "http://spa.example", "Access-Control-Request-Method": "GET"}
    # Starlette's router answers OPTIONS on a GET/POST route with 405 before any handler.
    expected = {303, 405} if method == "OPTIONS" and app.framework != "flask" else {303}
    reply = await app.request(method, "/billing", {**browser(), **preflight})
    assert reply.status in expected
    assert b"aal2" not in reply.body
    json_reply = await app.request(method, "/billing", {**JSON, **preflight})
    assert json_reply.status in expected - {303} | {401}


async def test_loop_breaker_after_three_hops(app: Harness, fake: FakeKratos) -> None:
    # A cookie that never reaches the app as a valid session: each visit goes to Kratos.
    headers = browser(Cookie="ory_kratos_session=wrong-domain")
    for _ in range(3):
        reply = await app.get("/billing", headers)
        assert reply.status == 303
        hop = reply.headers["set-cookie"].split(";")[0]
        headers["Cookie"] = f"ory_kratos_session=wrong-domain; {hop}"
    page = await app.get("/billing", headers)
    assert page.status == 409
    assert "location" not in page.headers
    assert b"cookie" in page.body and b"browser_url" in page.body
    assert "kratos_aal_hops=;" in page.headers["set-cookie"]  # reset: "try again" works
    # Another route counts on its own.
    assert (await app.get("/account", headers)).status == 303


async def loop_page(app: Harness, headers: dict[str, str], path: str = "/billing") -> Reply:
    """Bounce to Kratos MAX_HOPS times at once, as a redirect loop does; return the next reply."""
    base = headers.get("Cookie")
    for _ in range(MAX_HOPS):
        reply = await app.get(path, headers)
        assert reply.status == 303
        hop = reply.headers["set-cookie"].split(";")[0]
        headers = {**headers, "Cookie": "; ".join(filter(None, [base, hop]))}
    page = await app.get(path, headers)
    assert page.status == 409
    return page


async def test_loop_page_signs_out_a_session_the_app_received(
    app: Harness, fake: FakeKratos
) -> None:
    # The session reaches the app but never satisfies it: the page can end that session.
    session = fake.session("aal1", totp=True)
    page = (await loop_page(app, browser(session))).body.decode()
    assert '<a href="http://testserver/">the home page</a>' in page
    link = re.search(r'<a href="([^"]+)">sign out</a>', page)
    assert link is not None
    sign_out = html.unescape(link.group(1))
    assert path_of(sign_out) == f"{KRATOS}/self-service/logout"
    assert params(sign_out)["return_to"] == ["http://testserver/"]
    # One click in a browser, which sends Kratos its session cookie (Kratos refuses a
    # logout token without it): Kratos ends the session and sends the person home.
    with httpx.Client(transport=fake.transport()) as kratos:
        ended = kratos.get(sign_out, headers={"Accept": "text/html", **browser(session)})
    assert ended.status_code in (302, 303) and ended.headers["location"] == "http://testserver/"
    assert fake.calls["/self-service/logout"] == 1
    after = await app.get("/account", browser(session))
    assert after.status == 303 and "/self-service/login/browser" in after.location


async def test_loop_page_without_a_session_offers_home_only(app: Harness, fake: FakeKratos) -> None:
    page = (await loop_page(app, browser())).body.decode()
    assert '<a href="http://testserver/">the home page</a>' in page
    assert ">sign out</a>" not in page and "A sign-out link appears here" in page
    assert fake.calls["/self-service/logout/browser"] == 0  # nothing to end: no call


async def test_loop_page_offers_home_only_when_kratos_cannot_sign_out(
    app: Harness, fake: FakeKratos
) -> None:
    session = fake.session("aal1", totp=True)
    headers = browser(session)
    for _ in range(MAX_HOPS):
        reply = await app.get("/billing", headers)
        hop = reply.headers["set-cookie"].split(";")[0]
        headers["Cookie"] = f"{session.cookie_header}; {hop}"
    fake.fail("status", status=500, path_prefix="/self-service/logout/browser")
    page = await app.get("/billing", headers)
    assert page.status == 409
    assert b">sign out</a>" not in page.body and b"the home page</a>" in page.body


async def test_hop_counter_is_cleared_once_allowed(app: Harness, fake: FakeKratos) -> None:
    session = fake.session("aal2")
    reply = await app.get(
        "/billing", browser(session, Cookie=f"{session.cookie_header}; kratos_aal_hops=abc.2.1")
    )
    assert reply.status == 200
    assert "kratos_aal_hops=;" in reply.headers.get("set-cookie", "")


# ----------------------------------------------------------------------------- the example pages


async def test_home_shows_who_is_signed_in(app: Harness, fake: FakeKratos) -> None:
    identity = fake.create_identity("carol@example.com", totp=True)
    for aal in ("aal1", "aal2"):
        session = fake.session(aal, identity=identity)
        page = (await app.get("/", browser(session))).body.decode()
        assert f"carol@example.com · Signed in at <b>{aal}</b> with password (just now)" in page
        assert ("totp (just now)" in page) == (aal == "aal2")
        assert '<a href="/logout">Sign out</a>' in page
    anonymous = (await app.get("/", browser())).body.decode()
    assert "Not signed in." in anonymous and "Sign out" not in anonymous


async def test_home_names_the_framework_and_shows_the_curl_line(app: Harness) -> None:
    page = (await app.get("/", browser())).body.decode()
    name = {"starlette": "Starlette", "fastapi": "FastAPI", "flask": "Flask"}[app.framework]
    assert f"A {name} app protected by kratos-aal." in page
    assert "curl -H &#x27;Accept: application/json&#x27; http://testserver/api/balance" in page
    assert "/ui/clock" not in page  # the clock button is the demo's only


async def test_each_method_is_listed_once_with_its_latest_time(
    app: Harness, fake: FakeKratos
) -> None:
    # A re-authentication adds a second totp entry: the page shows the method once.
    session = fake.session("aal2", ["password", "totp", "totp"])
    page = (await app.get("/billing", browser(session))).body.decode()
    assert page.count("totp (") == 1 and page.count("password (") == 1


async def test_sign_in_times_are_told_by_kratoss_clock(app: Harness, fake: FakeKratos) -> None:
    # Issue 23 item 10: told as a time of day, a sign-in made after the demo's button had
    # moved Kratos's clock on showed about 10 minutes ahead of the user's own clock.
    restore = _pages.use_clock(fake.clock)
    try:
        before = fake.session("aal2")
        fake.clock.advance(_pages.CLOCK_STEP)
        after = fake.session("aal2")
        old = (await app.get("/", browser(before))).body.decode()
        new = (await app.get("/", browser(after))).body.decode()
    finally:
        restore()
    assert "password (10 min ago), totp (10 min ago)" in old
    assert "password (just now), totp (just now)" in new


async def test_clock_note_only_after_the_button(app: Harness) -> None:
    assert b"clock moved" not in (await app.get("/", browser())).body
    moved = await app.get("/?clock=moved", browser())
    assert b"Kratos&#x27;s clock moved 10 minutes on" in moved.body or (
        b"Kratos's clock moved 10 minutes on" in moved.body
    )


@pytest.mark.parametrize("path", ["/", "/account", "/billing", "/billing/transfer"])
async def test_pages_answer_json_clients_in_json(app: Harness, fake: FakeKratos, path: str) -> None:
    session = fake.session("aal2")
    reply = await app.get(path, {**JSON, "Cookie": session.cookie_header})
    assert reply.status == 200
    assert reply.json()["aal"] == "aal2"
    html = await app.get(path, browser(session))
    assert html.headers["Content-Type"].startswith("text/html")


async def test_logout_goes_through_kratos_and_home(app: Harness, fake: FakeKratos) -> None:
    session = fake.session("aal1")
    reply = await app.get("/logout", browser(session))
    assert reply.status == 303
    assert path_of(reply.location) == f"{KRATOS}/self-service/logout"
    assert params(reply.location)["return_to"] == ["http://testserver/"]
    nobody = await app.get("/logout", browser())
    assert (nobody.status, nobody.location) == (303, "http://testserver/")


async def test_public_home_says_it_could_not_check_when_kratos_is_down(
    app: Harness, fake: FakeKratos
) -> None:
    # A public page still renders; it claims nobody is signed in, nor that anyone is.
    session = fake.session("aal1")
    fake.fail("status", status=502, times=None)
    reply = await app.get("/", browser(session))
    assert reply.status == 200
    page = reply.body.decode()
    assert "Could not check who is signed in: Kratos did not answer." in page
    assert "Signed in" not in page and "Not signed in." not in page and "Sign out" not in page
    as_json = (await app.get("/", {**JSON, "Cookie": session.cookie_header})).json()
    assert as_json["checked"] is False and as_json["aal"] is None
    # Protected pages still fail closed.
    assert (await app.get("/account", browser(session))).status == 503
    fake.heal()
    assert (await app.get("/", {**JSON, "Cookie": session.cookie_header})).json()["checked"]


async def test_withheld_aal1_session_reads_as_not_signed_in(make_app: Any) -> None:
    fake = FakeKratos()  # highest_available: whoami withholds an aal1 session of a 2FA user
    app = make_app(fake)
    reply = await app.get("/", browser(fake.session("aal1", totp=True)))
    assert reply.status == 200
    assert b"Not signed in." in reply.body

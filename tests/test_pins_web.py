"""Pins on ``_web`` (issue 10): each test fails under a mutation the suite once let live."""

from __future__ import annotations

from kratos_aal import Credentials, Requirement
from kratos_aal._decision import Decision, Outcome
from kratos_aal._web import (
    MAX_HOPS,
    WebRequest,
    WebResponse,
    bad_request,
    conclude,
    route_readings,
    strictest,
)

NOW = 1_800_000_000


def test_readings_strip_only_slashes_before_the_first_segment() -> None:
    # Werkzeug's "/" + lstrip("/"): a segment starting with another character stays whole.
    assert route_readings("//Xa") == {"//Xa", "/Xa"}
    assert route_readings("//X/a") == {"//X/a", "/X/a"}


def test_strictest_keeps_the_level_it_was_given() -> None:
    merged = strictest([Requirement("aal1", max_age=60), Requirement("aal1", max_age=30)])
    assert merged == Requirement("aal1", max_age=30)
    merged = strictest([Requirement("aal2", max_age=60), Requirement("aal1", max_age=30)])
    assert merged == Requirement("aal2", max_age=30)


def test_bad_request_is_plain_text_with_its_reason() -> None:
    assert bad_request("path too long") == WebResponse(
        400,
        [("Content-Type", "text/plain; charset=utf-8"), ("Cache-Control", "no-store")],
        b"Bad Request: path too long\n",
    )


def test_loop_page_says_what_happened_and_why() -> None:
    login = Decision(Outcome.LOGIN, redirect_to="http://kratos/login")
    cookie = ""
    for _ in range(MAX_HOPS):
        request = WebRequest("GET", "http", "app", "/x", "", {"cookie": cookie})
        response = conclude(login, request, Credentials(), now=NOW)
        assert response is not None and response.status == 303
        cookie = dict(response.headers)["Set-Cookie"].split(";")[0]
    request = WebRequest("GET", "http", "app", "/x", "", {"cookie": cookie})
    page = conclude(login, request, Credentials(), now=NOW)
    assert page is not None and page.status == 409
    body = page.body.decode()
    # The exact words a person reads: title, what happened, the likely causes, the ways out.
    assert "<title>Sign-in keeps coming back here</title>" in body
    assert "<h1>Sign-in keeps coming back here</h1>" in body
    assert (
        "<p>This page sent you to sign in several times in a row, and each time your browser "
        "came straight back without a session this page accepts.</p>"
        "<p>Likely causes: the Kratos session cookie does not reach this app (its domain or "
        "path does not cover this site, or it is Secure and this site is plain http), or "
        "kratos-aal's <code>browser_url</code> does not point at the Kratos that browsers use."
        '</p><p>When that is fixed, <a href="http://kratos/login">try again</a>. Or go to '
        '<a href="/">the home page</a>. (A sign-out link appears here when your browser '
        "sends this app a session.)</p>"
    ) in body


def test_denial_pages_need_no_icon_from_the_app() -> None:
    # A browser asks for /favicon.ico unless the page names an icon; the app may not have one.
    unavailable = Decision(Outcome.UNAVAILABLE, retry_after=3)
    request = WebRequest("GET", "http", "app", "/x", "", {"accept": "text/html"})
    page = conclude(unavailable, request, Credentials(), now=NOW)
    assert page is not None and page.status == 503
    assert b'<link rel=icon href="data:,">' in page.body


def test_path_rules_remember_plain_paths_and_answer_from_memory() -> None:
    from kratos_aal._web import PathRules

    rules = PathRules({"/pay/*": "aal2"})
    answer = rules.requirement("/pay/now")
    assert answer == Requirement("aal2") and rules.known == {"/pay/now": answer}
    # What is remembered is what is answered: the adapters read the memo first too.
    remembered = Requirement("aal1")
    rules.known["/pay/now"] = remembered
    assert rules.requirement("/pay/now") is remembered
    for path in ("/pay//now", "/pay/%6Eow", "/pay/./now", "/pay/n\u00f6w"):
        assert rules.requirement(path) == Requirement("aal2")
    assert rules.requirement("/other//now") is None  # no rule for any reading of it
    assert list(rules.known) == ["/pay/now"]  # only plain paths are remembered


def test_path_rules_remember_at_most_so_many_paths() -> None:
    from kratos_aal._web import PathRules
    from kratos_aal._web.paths import _KNOWN_PATHS

    rules = PathRules({"/pay/*": "aal2"})
    for number in range(_KNOWN_PATHS + 1):
        rules.requirement(f"/p/{number}")
    assert len(rules.known) == _KNOWN_PATHS
    assert rules.requirement("/pay/last") == Requirement("aal2")
    assert "/pay/last" not in rules.known

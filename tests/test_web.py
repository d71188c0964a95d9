"""``_web`` on its own: path readings, globs, return_to limits, denial headers."""

from __future__ import annotations

from typing import Any

import pytest

from kratos_aal import KratosConfig, Requirement
from kratos_aal._credentials import Credentials
from kratos_aal._decision import Decision, Outcome
from kratos_aal._web import (
    HOP_COOKIE,
    HOP_WINDOW,
    MAX_HOPS,
    BadRequest,
    PathRules,
    WebRequest,
    clear_hops,
    conclude,
    hop_key,
    return_to,
    route_readings,
    sets_hops,
    strictest,
)
from kratos_aal._web.hops import _hop_mac
from kratos_aal._web.urls import _same_origin

CONFIG = KratosConfig(public_url="http://kratos:4433")
ORIGIN = "http://app.example"
HTML = {"accept": "text/html"}
LOGIN = Decision(Outcome.LOGIN, redirect_to="http://kratos:4433/self-service/login/browser")
NOW = 1_800_000_000


def web(method: str = "GET", path: str = "/x", **headers: str) -> WebRequest:
    return WebRequest(method, "http", "app.example", path, "", {**HTML, **headers})


# ------------------------------------------------------------------- path readings (issue 9)

BILLING = PathRules({"/billing/transfer": Requirement("aal2", max_age=300), "/billing/*": "aal2"})


@pytest.mark.parametrize(
    "path",
    [
        "/billing",
        "//billing",
        "///billing/x",
        "/billing//x",
        "/./billing",
        "/billing/../billing/x",
        "/billing/%2e%2e/billing",
        "/%2fbilling",
        "/%2Fbilling",
        "/x/../billing",
        "/../billing",
        "/billing/.",
        "/billing/./x",
        "billing",  # Werkzeug routes a PATH_INFO without its slash as "/billing"
        "/billing/x/..",
        "/%62illing",  # a literal %62 in the decoded path: a proxy may decode once more
    ],
)
def test_every_spelling_of_a_protected_path_is_protected(path: str) -> None:
    assert BILLING.requirement(path) == Requirement("aal2")


@pytest.mark.parametrize(
    "path",
    ["//billing/transfer", "/billing//transfer", "/billing/./transfer", "/x/../billing/transfer"],
)
def test_the_strictest_reading_wins(path: str) -> None:
    # "/billing//transfer" as written matches only "/billing/*"; routed, it is the transfer.
    assert BILLING.requirement(path) == Requirement("aal2", max_age=300)


@pytest.mark.parametrize("path", ["/", "/billingx", "/bill/ing", "/public/billing"])
def test_other_paths_stay_public(path: str) -> None:
    assert BILLING.requirement(path) is None


def test_readings_of_a_plain_path_are_just_the_path() -> None:
    assert route_readings("/billing/x") == {"/billing/x"}
    assert route_readings("") == {"/"}


@pytest.mark.parametrize(
    ("path", "resolved"),
    [
        ("/a/./b", "/a/b"),
        ("/a/.", "/a/"),
        ("/a/b/..", "/a/"),
        ("/a/../b", "/b"),
        ("/../b", "/b"),
        ("/..", "/"),
        ("/a/..b/.c", "/a/..b/.c"),
    ],
)
def test_dot_segments_resolve_as_browsers_do(path: str, resolved: str) -> None:
    assert resolved in route_readings(path)


@pytest.mark.parametrize("path", ["/x/../y", "//x/../y", "/x//../y"])
def test_unresolved_readings_count_too(path: str) -> None:
    # A router that keeps ".." routes "/x/../y" below /x; one that also collapses
    # slashes routes "//x/../y" there too.
    assert PathRules({"/x/*": "aal1"}).requirement(path) == Requirement("aal1")


def test_readings_include_what_werkzeug_routes() -> None:
    assert "/billing" in route_readings("///billing")
    assert "/billing/x" in route_readings("/billing/./x")
    assert "/" in route_readings("/..")


def test_no_rules_no_requirement() -> None:
    assert PathRules(None).requirement("//billing") is None


def test_strictest_merges_level_age_and_methods() -> None:
    merged = strictest(
        [
            Requirement("aal1", max_age=600, methods={"password", "webauthn"}),
            Requirement("aal2", max_age=60),
            Requirement("aal1", methods={"webauthn", "totp"}),
        ]
    )
    assert merged == Requirement("aal2", max_age=60, methods={"webauthn"})


def test_strictest_keeps_one_requirement_as_it_is() -> None:
    one = Requirement("aal1", max_age=30)
    assert strictest([one, Requirement("aal1", max_age=30)]) is one


def test_strictest_with_disjoint_methods_keeps_the_first() -> None:
    merged = strictest(
        [Requirement("aal2", methods={"totp"}), Requirement("aal2", methods={"webauthn"})]
    )
    assert merged == Requirement("aal2", methods={"totp"})


# ------------------------------------------------------------------- globs (issue 10 item 2)


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/org/acme/billing", "aal2"),
        ("/org/a/b/billing", "aal2"),
        ("/org//billing", "aal2"),
        ("/org/acme/billing/x", None),
        ("/org/acme/bill", None),
        ("/admin", "aal1"),
        ("/adminpanel", "aal1"),
        ("/admin/users", "aal1"),
        ("/admi", None),
        ("/x/report.pdf", "aal2"),
        ("/x/y/report.pdf", "aal2"),
        ("/x/report.pdfx", None),
    ],
)
def test_inner_and_suffix_stars(path: str, expected: str | None) -> None:
    rules = PathRules({"/org/*/billing": "aal2", "/admin*": "aal1", "/*/report.*f": "aal2"})
    found = rules.match(path)
    assert (found.aal.value if found else None) == expected


def test_several_stars_in_one_glob() -> None:
    rules = PathRules({"/t/*/p/*/x": "aal1"})
    assert rules.match("/t/1/p/2/x") is not None
    assert rules.match("/t/1/p/2/y") is None
    assert rules.match("/t/1/q/2/x") is None


def test_first_match_wins_in_order() -> None:
    rules = PathRules({"/a/*": "aal1", "/a/b": "aal2"})
    assert rules.match("/a/b") == Requirement("aal1")
    reverse = PathRules({"/a/b": "aal2", "/a/*": "aal1"})
    assert reverse.match("/a/b") == Requirement("aal2")
    assert reverse.match("/a/c") == Requirement("aal1")


# -------------------------------------------------------- return_to (issue 10 items 11, 12)


@pytest.mark.parametrize("method", ["GET", "HEAD", "OPTIONS", "TRACE"])
def test_safe_methods_come_back_to_the_url(method: str) -> None:
    request = web(method, "/page", referer=f"{ORIGIN}/form")
    assert return_to(request, CONFIG) == f"{ORIGIN}/page"


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
def test_unsafe_methods_come_back_to_the_referer(method: str) -> None:
    request = web(method, "/page", referer=f"{ORIGIN}/form")
    assert return_to(request, CONFIG) == f"{ORIGIN}/form"


def test_url_length_limit_both_sides() -> None:
    base = len(f"{ORIGIN}/")
    at_limit = web(path="/" + "a" * (4096 - base))
    assert return_to(at_limit, CONFIG) == f"{ORIGIN}/" + "a" * (4096 - base)
    over = web(path="/" + "a" * (4097 - base))
    assert return_to(over, CONFIG) == f"{ORIGIN}/"


def test_host_length_limit_both_sides() -> None:
    # 63-character labels (the most a label may have), up to exactly 260 characters.
    label = "a" * 63
    host = ".".join([label] * 4) + "." + "b" * 4  # 4 * 64 + 4 = 260
    assert len(host) == 260
    request = WebRequest("GET", "http", host, "/", "", HTML)
    assert return_to(request, CONFIG) == f"http://{host}/"
    longer = WebRequest("GET", "http", host + "b", "/", "", HTML)
    with pytest.raises(BadRequest):
        return_to(longer, CONFIG)


def test_same_origin_referer_length_both_sides() -> None:
    path = "/" + "r" * (4096 - len(ORIGIN) - 1)
    assert _same_origin(ORIGIN + path, ORIGIN) == ORIGIN + path
    assert _same_origin(ORIGIN + path + "r", ORIGIN) is None


@pytest.mark.parametrize("char", ["\x00", "\x1f", " ", "\x7f", "\x80", "é"])
def test_same_origin_refuses_control_and_non_ascii(char: str) -> None:
    assert _same_origin(f"{ORIGIN}/a{char}b", ORIGIN) is None


def test_same_origin_accepts_the_first_and_last_printable() -> None:
    # "!" (0x21) and "~" (0x7e) are the bounds of what is kept.
    assert _same_origin(f"{ORIGIN}/a!b~", ORIGIN) == f"{ORIGIN}/a!b~"


def test_same_origin_refuses_other_origins_and_users() -> None:
    assert _same_origin("http://evil.example/", ORIGIN) is None
    assert _same_origin("http://user@app.example/", ORIGIN) is None
    assert _same_origin("", ORIGIN) is None


# ----------------------------------------------------- denial headers (issue 10 item 8, 11)


def hop_cookie_of(response_headers: list[tuple[str, str]]) -> str:
    return next(v for k, v in response_headers if k == "Set-Cookie")


@pytest.mark.parametrize(
    "decision",
    [LOGIN, Decision(Outcome.UNAVAILABLE, retry_after=7)],
    ids=["login", "unavailable"],
)
@pytest.mark.parametrize("accept", ["text/html", "application/json"])
def test_denials_are_never_stored(decision: Decision, accept: str) -> None:
    response = conclude(decision, web(accept=accept), Credentials(), now=NOW)
    assert response is not None
    assert ("Cache-Control", "no-store") in response.headers


def test_loop_page_is_never_stored_and_links_to_try_again() -> None:
    request = web(path="/x")
    route = None
    cookie = ""
    for _ in range(MAX_HOPS):
        response = conclude(LOGIN, web(path="/x", cookie=cookie), Credentials(), now=NOW)
        assert response is not None and response.status == 303
        cookie = hop_cookie_of(response.headers).split(";")[0]
        route = cookie
    assert route is not None
    page = conclude(LOGIN, web(path="/x", cookie=cookie), Credentials(), now=NOW)
    assert page is not None and page.status == 409
    assert ("Cache-Control", "no-store") in page.headers
    assert f'<a href="{LOGIN.redirect_to}">try again</a>' in page.body.decode()
    assert "Max-Age=0" in hop_cookie_of(page.headers)
    assert request.path == "/x"


@pytest.mark.parametrize(("scheme", "secure"), [("https", True), ("http", False)])
def test_hop_cookie_is_secure_on_https(scheme: str, secure: bool) -> None:
    request = WebRequest("GET", scheme, "app.example", "/x", "", HTML)
    response = conclude(LOGIN, request, Credentials(), now=NOW)
    assert response is not None
    assert hop_cookie_of(response.headers).endswith("; Secure") is secure


def test_clearing_cookie_only_when_one_came_in() -> None:
    assert clear_hops(web()) is None
    assert clear_hops(web(cookie="other=1")) is None
    cleared = clear_hops(web(cookie=f"{HOP_COOKIE}=abc.1.2"))
    assert cleared is not None
    assert cleared[1].startswith(f"{HOP_COOKIE}=; ") and "Max-Age=0;" in cleared[1]


@pytest.mark.parametrize(("scheme", "secure"), [("http", False), ("https", True)])
def test_clearing_cookie_is_secure_on_https(scheme: str, secure: bool) -> None:
    # As the cookie it clears: a Secure cookie is only replaced by a Secure one.
    cookie = {**HTML, "cookie": f"{HOP_COOKIE}=abc.1.2"}
    cleared = clear_hops(WebRequest("GET", scheme, "app.example", "/x", "", cookie))
    assert cleared is not None
    assert cleared[1].endswith("; Secure") is secure


@pytest.mark.parametrize("kind", [str, bytes, bytearray], ids=["str", "bytes", "bytearray"])
def test_sets_hops_reads_text_and_any_bytes(kind: Any) -> None:
    # r27 finding: ASGI headers that are bytes-like but not bytes (a bytearray, which
    # the relay read before issue 27) must not be read as text: startswith(str) raises.
    def pairs(*headers: tuple[str, str]) -> list[tuple[Any, Any]]:
        if kind is str:
            return list(headers)
        return [(kind(n.encode()), kind(v.encode())) for n, v in headers]

    hop = f"{HOP_COOKIE}=r.1.1; Path=/"
    assert sets_hops(pairs(("Set-Cookie", "a=1"), ("SET-COOKIE", hop)))
    assert not sets_hops(pairs(("Set-Cookie", "a=1"), ("X-Other", hop)))
    assert not sets_hops(pairs(("Content-Type", "text/plain")))


def hops_after(since: int) -> int:
    response = conclude(LOGIN, web(path="/x"), Credentials(), now=NOW)
    assert response is not None
    route = hop_cookie_of(response.headers).split("=", 1)[1].split(".")[0]
    payload = f"{route}.2.{since}"
    signed = f"{payload}.{_hop_mac(hop_key(None), payload)}"
    again = conclude(LOGIN, web(path="/x", cookie=f"{HOP_COOKIE}={signed}"), Credentials(), now=NOW)
    assert again is not None
    return int(hop_cookie_of(again.headers).split(";")[0].split(".")[1])


def test_hop_window_both_sides() -> None:
    assert hops_after(NOW - HOP_WINDOW + 1) == 3  # still in the window: counted on
    assert hops_after(NOW - HOP_WINDOW) == 1  # the window has passed: counting starts over
    assert hops_after(NOW) == 3
    assert hops_after(NOW + 1) == 1  # a "since" in the future is not believed


def bounce(gap: int, times: int) -> list[int]:
    """Send one browser to Kratos *times* times, *gap* seconds apart; return the statuses."""
    statuses, cookie = [], ""
    for step in range(times):
        request = web(path="/x", cookie=cookie) if cookie else web(path="/x")
        response = conclude(LOGIN, request, Credentials(), now=NOW + step * gap)
        assert response is not None
        statuses.append(response.status)
        if response.status == 303:
            cookie = hop_cookie_of(response.headers).split(";")[0]
    return statuses


def test_a_redirect_loop_is_caught_however_long_it_runs() -> None:
    # Each bounce comes back within the window of the one before: a loop, even though
    # the whole run takes longer than the window.
    assert bounce(HOP_WINDOW - 1, MAX_HOPS + 1) == [303] * MAX_HOPS + [409]


def test_a_person_coming_back_slowly_is_no_loop() -> None:
    # Someone who looks at the sign-in page and clicks "Back" each time is never accused.
    assert bounce(HOP_WINDOW, 8) == [303] * 8


def route_of(path: str) -> str:
    response = conclude(LOGIN, web(path=path), Credentials(), now=NOW)
    assert response is not None
    return hop_cookie_of(response.headers).split("=", 1)[1].split(".")[0]


@pytest.mark.parametrize(
    "forge",
    [
        pytest.param(lambda route: f"{route}.3.{NOW}", id="unsigned"),
        pytest.param(lambda route: f"{route}.3.{NOW}.{'0' * 22}", id="wrong-signature"),
        pytest.param(
            lambda route: (
                f"{route}.3.{NOW}.{_hop_mac(hop_key('another-secret'), f'{route}.3.{NOW}')}"
            ),
            id="another-key",
        ),
        pytest.param(
            lambda route: f"{route}.3.{NOW}.{_hop_mac(hop_key(None), f'{route}.2.{NOW}')}",
            id="count-raised",
        ),
    ],
)
def test_a_forged_hop_count_counts_as_no_cookie(forge: Any) -> None:
    route = route_of("/x")
    request = web(path="/x", cookie=f"{HOP_COOKIE}={forge(route)}")
    response = conclude(LOGIN, request, Credentials(), now=NOW)
    assert response is not None and response.status == 303  # no loop page
    assert hop_cookie_of(response.headers).split("=", 1)[1].split(".")[1] == "1"


def test_a_count_signed_with_the_shared_secret_holds_on_every_worker() -> None:
    # Two workers (or instances) share the secret, not the process: a count one signed
    # is read by the other.
    cookie = ""
    for _ in range(MAX_HOPS):
        request = web(path="/x", cookie=cookie) if cookie else web(path="/x")
        response = conclude(LOGIN, request, Credentials(), now=NOW, secret="a-shared-secret")
        assert response is not None and response.status == 303
        cookie = hop_cookie_of(response.headers).split(";")[0]
    page = conclude(
        LOGIN, web(path="/x", cookie=cookie), Credentials(), now=NOW, secret="a-shared-secret"
    )
    assert page is not None and page.status == 409
    # Read with another key (a worker without the secret), the count is absent.
    other = conclude(LOGIN, web(path="/x", cookie=cookie), Credentials(), now=NOW)
    assert other is not None and other.status == 303


def test_the_hop_key_comes_from_the_secret() -> None:
    assert hop_key("a-shared-secret") == hop_key(b"a-shared-secret") != hop_key(None)
    assert hop_key("") == hop_key(None)
    assert len(hop_key(None)) == 32


def test_loop_page_links_home() -> None:
    cookie = ""
    for _ in range(MAX_HOPS):
        request = web(path="/x", cookie=cookie) if cookie else web(path="/x")
        response = conclude(LOGIN, request, Credentials(), now=NOW)
        assert response is not None and response.status == 303
        cookie = hop_cookie_of(response.headers).split(";")[0]
    page = conclude(LOGIN, web(path="/x", cookie=cookie), Credentials(), now=NOW)
    assert page is not None and page.status == 409
    assert b'href="/"' in page.body

"""The loop breaker costs no Kratos call a client can multiply (SPEC §8, issue 21 item 5).

A forged hop count is no count: an aal1 user who sends ``<route>.3.<now>`` on every
request gets the redirect, never the loop page and its sign-out link. A genuine loop page
shown again (its signed count replayed within the window) costs no call of its own.
"""

from __future__ import annotations

import hashlib
import time
from urllib.parse import quote

import pytest

from kratos_aal._web import HOP_COOKIE, MAX_HOPS
from kratos_aal.testing import FakeKratos

from .test_layered_hops import APPS, hop_cookie, in_process

LOGOUT = "/self-service/logout/browser"


def kratos_calls(fake: FakeKratos) -> int:
    return len(fake.requests)


@pytest.mark.parametrize("name", sorted(APPS))
def test_a_forged_hop_count_gets_no_loop_page(name: str) -> None:
    fake = FakeKratos(whoami_required_aal="aal1")
    build, asgi = APPS[name]
    session = fake.session("aal1", totp=True)
    route = hashlib.sha256(b"/pay").hexdigest()[:12]
    with in_process(build(fake), asgi) as http:
        for _ in range(20):
            forged = f"{route}.{MAX_HOPS}.{int(time.time())}"
            cookie = f"{session.cookie_header}; {HOP_COOKIE}={forged}"
            reply = http.get("/pay", headers={"Accept": "text/html", "Cookie": cookie})
            assert reply.status_code == 303
    assert fake.calls[LOGOUT] == 0
    # One whoami per request (asked afresh before each denial) and one probe in all; the
    # first request of these layered apps also pays the rule's own cold whoami.
    assert kratos_calls(fake) <= 20 + 2


@pytest.mark.parametrize("name", sorted(APPS))
def test_a_loop_page_shown_again_costs_no_call_of_its_own(name: str) -> None:
    fake = FakeKratos(whoami_required_aal="aal1")
    build, asgi = APPS[name]
    session = fake.session("aal1", totp=True)
    hops: str | None = None
    with in_process(build(fake), asgi) as http:
        for _ in range(MAX_HOPS):
            cookie = session.cookie_header + (f"; {HOP_COOKIE}={hops}" if hops else "")
            reply = http.get("/pay", headers={"Accept": "text/html", "Cookie": cookie})
            assert reply.status_code == 303
            hops = hop_cookie(reply, hops)
        replayed = f"{session.cookie_header}; {HOP_COOKIE}={hops}"
        before = kratos_calls(fake)
        statuses = []
        for _ in range(5):  # the same signed count, sent again
            reply = http.get("/pay", headers={"Accept": "text/html", "Cookie": replayed})
            statuses.append(reply.status_code)
    assert statuses[0] == 409
    # Whatever the clock did (a page past the window is a redirect again), each request
    # cost one whoami; the logout flow was made once, and the session it invalidated was
    # looked up once more (by the rule above): two calls beyond one per request, in all.
    assert fake.calls[LOGOUT] == 1
    assert kratos_calls(fake) - before <= 5 + 2


@pytest.mark.parametrize("name", sorted(APPS))
def test_a_loop_page_shown_again_under_other_hosts_costs_no_call_of_its_own(name: str) -> None:
    # Without app_url the page's home (the sign-out link's return_to) comes from the Host
    # header, which the client writes: a host of its own on each replay must not make a
    # logout flow each.
    fake = FakeKratos(whoami_required_aal="aal1")
    build, asgi = APPS[name]
    session = fake.session("aal1", totp=True)
    hops: str | None = None
    with in_process(build(fake), asgi) as http:
        for _ in range(MAX_HOPS):
            cookie = session.cookie_header + (f"; {HOP_COOKIE}={hops}" if hops else "")
            reply = http.get("/pay", headers={"Accept": "text/html", "Cookie": cookie})
            assert reply.status_code == 303
            hops = hop_cookie(reply, hops)
        replayed = f"{session.cookie_header}; {HOP_COOKIE}={hops}"
        before = kratos_calls(fake)
        statuses = []
        for n in range(5):
            headers = {"Accept": "text/html", "Cookie": replayed, "Host": f"h{n}.example"}
            reply = http.get("/pay", headers=headers)
            statuses.append(reply.status_code)
            if reply.status_code == 409:
                # Each page's sign-out link still comes back to the page's own home.
                assert "return_to=" + quote(f"http://h{n}.example/", safe="") in reply.text
    assert statuses[0] == 409
    assert fake.calls[LOGOUT] <= 1
    assert kratos_calls(fake) - before <= 5 + 2

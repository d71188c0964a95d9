"""Pins on the models and the cache (issue 10): each fails under a mutation once left alive."""

from __future__ import annotations

import threading
from concurrent.futures import Future
from datetime import datetime, timezone
from typing import Any

import pytest

from kratos_aal import (
    AAL,
    Credentials,
    Identity,
    KratosUnavailable,
    MalformedResponse,
    Session,
    _cache,
)
from kratos_aal._cache import MISSING, Flights, TTLCache
from kratos_aal._credentials import MAX_CREDENTIAL_LENGTH, cookie_from_header

from .pins import T0, session_json

NAME = "ory_kratos_session"


# ------------------------------------------------------------------- item 6: identity.id


@pytest.mark.parametrize("identity_id", ["", None, 5, ["i"]])
def test_identity_id_must_be_a_non_empty_string(identity_id: Any) -> None:
    with pytest.raises(MalformedResponse, match=r"identity\.id"):
        Identity.from_json({"id": identity_id, "traits": {}})
    body = session_json() | {"identity": {"id": identity_id}}
    with pytest.raises(MalformedResponse, match=r"identity\.id"):
        Session.from_json(body)


def test_identity_without_id_is_refused() -> None:
    with pytest.raises(MalformedResponse, match=r"identity\.id"):
        Identity.from_json({"traits": {}})


# --------------------------------------------------------- item 12: traits and authenticated_at


def test_identity_without_traits_has_empty_traits() -> None:
    identity = Identity.from_json({"id": "i-1"})
    assert identity.id == "i-1"
    assert dict(identity.traits) == {}
    assert identity.metadata_public is None
    with pytest.raises(TypeError):
        identity.traits["email"] = "x"  # type: ignore[index]


def test_identity_traits_are_a_frozen_copy() -> None:
    traits = {"email": "a@example.org"}
    identity = Identity.from_json({"id": "i-1", "traits": traits, "metadata_public": {"k": 1}})
    traits["email"] = "changed"
    assert dict(identity.traits) == {"email": "a@example.org"}
    assert dict(identity.metadata_public or {}) == {"k": 1}


def test_authenticated_at_is_read() -> None:
    body = session_json() | {"authenticated_at": "2027-01-15T08:00:00.123456789Z"}
    session = Session.from_json(body)
    assert session.authenticated_at == datetime(2027, 1, 15, 8, 0, 0, 123456, timezone.utc)
    assert Session.from_json(session_json()).authenticated_at is None
    with pytest.raises(MalformedResponse, match="authenticated_at"):
        Session.from_json(session_json() | {"authenticated_at": "yesterday"})


def test_issued_and_expires_at_are_read() -> None:
    body = session_json(expires_at=None) | {
        "issued_at": "2027-01-15T08:00:00Z",
        "expires_at": "2027-01-16T08:00:00+01:00",
    }
    session = Session.from_json(body)
    assert session.issued_at == datetime(2027, 1, 15, 8, tzinfo=timezone.utc)
    assert session.expires_at == datetime(2027, 1, 16, 7, tzinfo=timezone.utc)


# ----------------------------------------------------- item 9: Credentials equality, AAL order


def test_credentials_equality() -> None:
    assert Credentials(cookie="c") == Credentials(cookie="c")
    assert Credentials(token="t") == Credentials(token="t")
    assert Credentials(token="t", bearer=True) == Credentials(token="t", bearer=True)
    assert Credentials() == Credentials()
    assert not (Credentials(cookie="c") != Credentials(cookie="c"))  # noqa: SIM202
    assert Credentials(cookie="c") != Credentials(cookie="d")
    assert Credentials(cookie="c") != Credentials(token="c")
    assert Credentials(token="t") != Credentials(token="u")
    assert Credentials(token="t") != Credentials(token="t", bearer=True)
    assert Credentials(cookie="c") != Credentials()
    assert Credentials(cookie="c").__eq__("c") is NotImplemented
    assert Credentials(cookie="c") != "c"
    assert hash(Credentials(token="t")) == hash(Credentials(token="t"))
    # Not a contract, but a constant hash would make every cache lookup a linear scan.
    assert len({hash(Credentials(cookie=f"c{n}")) for n in range(8)}) == 8
    assert len({Credentials(cookie="c"), Credentials(cookie="c"), Credentials(token="c")}) == 2


LEVELS = [AAL.AAL0, AAL.AAL1, AAL.AAL2, AAL.AAL3]


@pytest.mark.parametrize("left", LEVELS)
@pytest.mark.parametrize("right", LEVELS)
def test_aal_order_matches_rank(left: AAL, right: AAL) -> None:
    a, b = LEVELS.index(left), LEVELS.index(right)
    assert (left < right) is (a < b)
    assert (left <= right) is (a <= b)
    assert (left > right) is (a > b)
    assert (left >= right) is (a >= b)
    # The same against the plain strings, in either case. Upper case matters: str's own
    # order would answer a lower-case comparison correctly by luck ("aal1" < "aal2").
    for text in (right.value, right.value.upper()):
        assert (left < text) is (a < b)
        assert (left <= text) is (a <= b)
        assert (left > text) is (a > b)
        assert (left >= text) is (a >= b)


def test_aal_equal_levels() -> None:
    assert not AAL.AAL2 < AAL.AAL2
    assert not AAL.AAL2 > AAL.AAL2
    assert AAL.AAL2 <= AAL.AAL2 and AAL.AAL2 >= AAL.AAL2
    assert AAL.AAL2 == "aal2" and hash(AAL.AAL2) == hash("aal2")  # type: ignore[comparison-overlap]


@pytest.mark.parametrize("other", [2, None, "aal9", 2.0])
def test_aal_against_strangers(other: Any) -> None:
    for op in ("__lt__", "__le__", "__gt__", "__ge__"):
        assert getattr(AAL.AAL2, op)(other) is NotImplemented


# ------------------------------------------------------------ item 11: credential length 4096


def test_max_credential_length_is_4096() -> None:
    assert MAX_CREDENTIAL_LENGTH == 4096


@pytest.mark.parametrize(("length", "kept"), [(4095, True), (4096, True), (4097, False)])
def test_credential_length_limit(length: int, kept: bool) -> None:
    value = "a" * length
    if kept:
        assert Credentials(cookie=value).cookie == value
        assert Credentials(token=value).token == value
    else:
        with pytest.raises(ValueError, match="cookie"):
            Credentials(cookie=value)
        with pytest.raises(ValueError, match="token"):
            Credentials(token=value)
    headers = [
        ({"cookie": f"{NAME}={value}"}, (value, None, False)),
        ({"x-session-token": value}, (None, value, False)),
        ({"authorization": f"Bearer {value}"}, (None, value, True)),
    ]
    for given, expected in headers:
        read = Credentials.from_headers(given)
        assert (read.cookie, read.token, read.bearer) == (expected if kept else (None, None, False))
    assert (cookie_from_header(f"{NAME}={value}", NAME) == value) is kept


# ------------------------------------------------------ item 12: a cookie with odd quoting


@pytest.mark.parametrize(
    ("value", "read"),
    [
        ('"abc"', "abc"),
        ('"a"', "a"),
        ('"abc', None),
        ('abc"', None),
        ('"', None),
        ('""', None),
        ("abc", "abc"),
    ],
)
def test_cookie_quotes(value: str, read: str | None) -> None:
    assert cookie_from_header(f"{NAME}={value}", NAME) == read
    credentials = Credentials.from_headers({"Cookie": f"other=1; {NAME}={value}"})
    assert credentials.cookie == read


def test_cookie_name_must_match_exactly() -> None:
    assert cookie_from_header(f"x{NAME}=a; {NAME}x=b", NAME) is None
    assert cookie_from_header(f" {NAME} =a", NAME) == "a"
    assert cookie_from_header(f"{NAME}", NAME) is None


# -------------------------------------- item 11: the cache's expiry comparison and threshold


def test_cache_entry_expires_exactly_at_its_ttl() -> None:
    now = [T0]
    cache = TTLCache(4, lambda: now[0])
    cache.put("k", "v", 10.0)
    now[0] = T0 + 9.5
    assert cache.get("k") == "v"
    assert len(cache) == 1
    now[0] = T0 + 10.0
    assert len(cache) == 0
    assert cache.get("k") is MISSING


def test_cache_get_drops_an_entry_exactly_at_expiry() -> None:
    now = [T0]
    cache = TTLCache(4, lambda: now[0])
    cache.put("k", "v", 10.0)
    now[0] = T0 + 10.0
    assert cache.get("k") is MISSING
    now[0] = T0  # an entry read as expired is gone, even if the clock goes back
    assert cache.get("k") is MISSING


@pytest.mark.parametrize(
    ("ttl", "stored"), [(0.001, True), (1.0, True), (0.0, False), (-1.0, False)]
)
def test_cache_stores_only_a_positive_ttl(ttl: float, stored: bool) -> None:
    cache = TTLCache(4, lambda: T0)
    cache.put("k", "old", 30.0)
    cache.put("k", "new", ttl)
    assert cache.get("k") == ("new" if stored else MISSING)
    assert len(cache) == (1 if stored else 0)


def test_cache_pop_and_clear() -> None:
    cache = TTLCache(4, lambda: T0)
    cache.put("a", 1, 5.0)
    cache.put("b", 2, 5.0)
    cache.pop("a")
    cache.pop("missing")
    assert cache.get("a") is MISSING and cache.get("b") == 2
    cache.clear()
    assert len(cache) == 0 and cache.get("b") is MISSING


def test_cache_is_bounded_least_recently_used_first() -> None:
    cache = TTLCache(2, lambda: T0)
    cache.put("a", 1, 5.0)
    cache.put("b", 2, 5.0)
    assert cache.get("a") == 1  # "b" is now the least recently used
    cache.put("c", 3, 5.0)
    assert cache.get("b") is MISSING
    assert (cache.get("a"), cache.get("c")) == (1, 3)


def test_cache_a_dead_entry_takes_no_room() -> None:
    # A ttl of 0 must not be stored: it would push a live entry out of a full cache.
    cache = TTLCache(2, lambda: T0)
    cache.put("a", 1, 5.0)
    cache.put("b", 2, 5.0)
    cache.put("c", 3, 0.0)
    assert (cache.get("a"), cache.get("b"), cache.get("c")) == (1, 2, MISSING)


@pytest.mark.parametrize(
    ("error", "copied"),
    [(KratosUnavailable("down", retry_after=3), True), (LookupError("not ours"), False)],
)
def test_flights_copy_only_our_errors_for_followers(
    error: Exception, copied: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    joined = threading.Event()

    class Watched(Future[Any]):
        def result(self, timeout: float | None = None) -> Any:
            joined.set()  # a follower waits on the leader's call
            return super().result(timeout)

    monkeypatch.setattr(_cache, "Future", Watched)
    flights = Flights()
    started, release = threading.Event(), threading.Event()
    raised: list[BaseException] = []

    def load() -> Any:
        started.set()
        release.wait(5)
        raise error

    def run() -> None:
        try:
            flights.run("k", load, lambda: MISSING)
        except Exception as caught:
            raised.append(caught)

    leader = threading.Thread(target=run)
    leader.start()
    started.wait(5)
    follower = threading.Thread(target=run)
    follower.start()
    assert joined.wait(10)  # the follower joined the leader's call
    release.set()
    leader.join(5)
    follower.join(5)
    assert len(raised) == 2 and all(type(e) is type(error) for e in raised)
    assert (raised[0] is not raised[1]) is copied


def test_session_repr_names_the_identity_but_no_traits() -> None:
    body = session_json(identity_id="identity-7", expires_at=None)
    body["identity"]["traits"] = {"email": "a@example.org"}
    text = repr(Session.from_json(body))
    assert "identity='identity-7'" in text and "example.org" not in text
    assert "identity=None" in repr(Session.from_json(body | {"identity": None}))


def test_asgi_reads_credentials_by_lower_case_names_only() -> None:
    # ASGI servers lower-case header names and Starlette reads them so; both the hit path
    # and the full path read a credential only under its lower-case name.
    from kratos_aal._credentials import asgi_credentials
    from kratos_aal._hit_key import asgi_hit_key

    name, hop = b"ory_kratos_session", b"kratos_aal_hops="
    cookie = (b"cookie", b"ory_kratos_session=abc")
    key, hops = asgi_hit_key([(b"Accept", b"text/html"), cookie], name, hop)
    assert key is not None and key == asgi_hit_key([cookie], name, hop)[0]
    assert hops is False
    assert asgi_hit_key([(b"authorization", b"Bearer x"), cookie], name, hop)[0] == key
    for spelling in (b"Cookie", b"COOKIE", b"cOOKIE"):
        mixed = [(spelling, b"ory_kratos_session=abc")]
        assert asgi_hit_key(mixed, name, hop) == (None, False)
        assert not asgi_credentials(mixed, "ory_kratos_session")
    for spelling in (b"X-Session-Token", b"x-Session-token"):
        assert asgi_hit_key([(spelling, b"t"), cookie], name, hop)[0] == key
        credentials = asgi_credentials([(spelling, b"t"), cookie], "ory_kratos_session")
        assert credentials.cookie == "abc" and credentials.token is None
    token = asgi_credentials([(b"x-session-token", b"t"), cookie], "ory_kratos_session")
    assert token.token == "t"
    assert asgi_hit_key([(b"x-session-token", b"t"), cookie], name, hop)[0] != key


def test_cache_evicts_as_before_after_a_clear() -> None:
    cache = TTLCache(2, lambda: T0)
    cache.put("a", 1, 5.0)
    cache.clear()
    for key in "abc":
        cache.put(key, key, 5.0)
    assert set(cache.index) == {"b", "c"} and len(cache) == 2
    assert (cache.get("a"), cache.get("c")) == (MISSING, "c")

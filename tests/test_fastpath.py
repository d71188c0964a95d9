"""The cache-hit path: it reads the same credential as the full path, or misses.

Only validated values are ever hashed into the cache, so the hit path may hash a raw,
unvalidated value: a malformed one can only miss. These tests hold it to that, count the
Python calls a hit makes (a guard against the hot path growing back), and check what the
precomputed entries keep.
"""

from __future__ import annotations

import asyncio
import gc
import sys
from collections.abc import Callable, MutableMapping
from datetime import datetime, timezone
from types import FrameType
from typing import Annotated, Any

import httpx
import pytest
from fastapi import Depends, FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kratos_aal import AsyncKratosClient, Credentials, KratosClient, Requirement, Session
from kratos_aal._cache import TTLCache
from kratos_aal._cached_session import CachedSession
from kratos_aal._core import session_key
from kratos_aal._credentials import asgi_credentials
from kratos_aal._hit_key import asgi_hit_key, environ_hit_key
from kratos_aal.integrations.fastapi import RequireAAL, require_aal2
from kratos_aal.testing import FakeKratos

NAME = "ory_kratos_session"
NAME_BYTES = NAME.encode()
HOP = b"kratos_aal_hops="
GOOD = ["MTcxNjc5-good", "b3J5X3N0", "YWJj"]
# Spellings around the good values: each is malformed, or the same value, or another one.
VALUES = [
    *GOOD,
    *(f'"{v}"' for v in GOOD),
    *(f" {v} " for v in GOOD),
    *(f"{v}\\x" for v in GOOD),
    *(f"{v}\u00e9" for v in GOOD),
    *(f"\u00a0{v}" for v in GOOD),
    *(f"{v}\x1f" for v in GOOD),
    '"',
    "",
    "a b",
    "x" * 4097,
]
PAIR_NAMES = [NAME, f" {NAME}", f"{NAME} ", f"x{NAME}", f"{NAME}x", "csrftoken", "kratos_aal_hops"]
HEADER_NAMES = ["cookie", "Cookie", "x-session-token", "X-Session-Token", "authorization", "accept"]
EXAMPLES = settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def valid_keys() -> set[bytes]:
    """Return the key of every well-formed value a generated request can carry."""
    keys = set()
    for value in VALUES:
        for cookie, token in ((value.strip().strip('"'), None), (None, value.strip())):
            try:
                credentials = Credentials(cookie=cookie, token=token)
            except ValueError:
                continue
            if credentials:
                keys.add(session_key(credentials))
    return keys


VALID = valid_keys()

pairs = st.tuples(st.sampled_from(PAIR_NAMES), st.sampled_from(VALUES)).map("=".join)
cookie_headers = st.lists(pairs | st.sampled_from(VALUES), max_size=4).flatmap(
    lambda parts: st.sampled_from(["; ", ";", " ; "]).map(lambda sep: sep.join(parts))
)
headers = st.lists(
    st.tuples(
        st.sampled_from(HEADER_NAMES),
        cookie_headers | st.sampled_from(VALUES) | st.sampled_from(["Bearer YWJj", "bearer  x"]),
    ),
    max_size=5,
)


def same_or_miss(key: bytes | None, full: Credentials) -> None:
    """Fail unless *key* is nothing, or can only miss, or is the full path's own key."""
    if key is None or key not in VALID:
        return  # a miss: the full path decides
    assert full, "the hit path found a cached credential the full path does not see"
    assert key == session_key(full)


@EXAMPLES
@given(headers)
def test_asgi_hit_key_reads_what_the_full_path_reads_or_misses(
    raw: list[tuple[str, str]],
) -> None:
    encoded = [(n.encode("latin-1"), v.encode("utf-8")) for n, v in raw]
    key, _ = asgi_hit_key(encoded, NAME_BYTES, HOP)
    same_or_miss(key, asgi_credentials(encoded, NAME))


@EXAMPLES
@given(st.none() | st.sampled_from(VALUES), st.none() | cookie_headers)
def test_environ_hit_key_reads_what_the_full_path_reads_or_misses(
    token: str | None, cookie: str | None
) -> None:
    # WSGI strings are bytes decoded as latin-1.
    token = None if token is None else token.encode().decode("latin-1")
    cookie = None if cookie is None else cookie.encode().decode("latin-1")
    pairs = [(n, v) for n, v in (("x-session-token", token), ("cookie", cookie)) if v is not None]
    key = environ_hit_key(token, cookie, NAME)
    same_or_miss(key, Credentials.from_headers(pairs, cookie_name=NAME))


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ([(b"cookie", b"ory_kratos_session=YWJj")], "YWJj"),
        ([(b"cookie", b'a=1; ory_kratos_session="YWJj"')], "YWJj"),
        ([(b"cookie", b"a=1;ory_kratos_session=YWJj;b=2")], "YWJj"),
        ([(b"cookie", b"a=1; ory_kratos_session=YWJj; b=2; c=3")], "YWJj"),
        ([(b"cookie", b"a=1"), (b"cookie", b"ory_kratos_session=YWJj")], "YWJj"),
        ([(b"x-session-token", b" YWJj "), (b"cookie", b"ory_kratos_session=b3J5")], "t:YWJj"),
        ([(b"x-session-token", b""), (b"cookie", b"ory_kratos_session=YWJj")], "YWJj"),
    ],
)
def test_asgi_hit_key_reads_plain_spellings(raw: list[tuple[bytes, bytes]], expected: str) -> None:
    key, hops = asgi_hit_key(raw, NAME_BYTES, HOP)
    kind, _, value = expected.rpartition(":")
    credentials = Credentials(token=value) if kind == "t" else Credentials(cookie=value)
    assert key == session_key(credentials) and not hops


@pytest.mark.parametrize(
    "raw",
    [
        [(b"Cookie", b"ory_kratos_session=YWJj")],  # no cookie to ASGI (and Starlette)
        [(b"cookie", b"xory_kratos_session=YWJj; ory_kratos_session=b3J5")],
        [(b"cookie", b"ory_kratos_session =YWJj; ory_kratos_session=b3J5")],
        [(b"cookie", b"a=ory_kratos_session=YWJj; ory_kratos_session=b3J5")],
        [(b"cookie", b"ory_kratos_session=; ory_kratos_session=b3J5")],
        [(b"cookie", b'ory_kratos_session=""; ory_kratos_session=b3J5')],
        [(b"cookie", b"ory_kratos_session=YWJj\xc3\xa9")],
        [(b"authorization", b"Bearer YWJj")],
        [],
    ],
)
def test_asgi_hit_key_leaves_doubtful_spellings_to_the_full_path(
    raw: list[tuple[bytes, bytes]],
) -> None:
    assert asgi_hit_key(raw, NAME_BYTES, HOP)[0] is None


@pytest.mark.parametrize("hops_first", [True, False])
def test_asgi_hit_key_spots_the_hop_cookie_in_the_same_pass(hops_first: bool) -> None:
    raw = [(b"cookie", b"kratos_aal_hops=2"), (b"cookie", b"ory_kratos_session=YWJj")]
    key, hops = asgi_hit_key(raw if hops_first else raw[::-1], NAME_BYTES, HOP)
    assert key == session_key(Credentials(cookie="YWJj")) and hops


def test_asgi_hit_key_reads_every_header_after_the_cookie() -> None:
    raw = [
        (b"cookie", b"ory_kratos_session=YWJj"),
        (b"cookie", b"a=1"),
        (b"x-session-token", b"b3J5"),
    ]
    assert asgi_hit_key(raw, NAME_BYTES, HOP)[0] == session_key(Credentials(token="b3J5"))


@pytest.mark.parametrize("value", [b'"YWJj', b'YWJj"'])
def test_asgi_hit_key_strips_only_a_pair_of_quotes(value: bytes) -> None:
    # One quote is part of the value: stripping it would read another session's cookie.
    key, _ = asgi_hit_key([(b"cookie", b"ory_kratos_session=" + value)], NAME_BYTES, HOP)
    assert key not in {session_key(Credentials(cookie=v)) for v in ("YWJ", "WJj", "YWJj")}


def test_environ_hit_key_token_first_and_no_non_ascii() -> None:
    cookie = session_key(Credentials(cookie="YWJj"))
    assert environ_hit_key(None, "ory_kratos_session=YWJj", NAME) == cookie
    assert environ_hit_key(" ", "ory_kratos_session=YWJj", NAME) == cookie
    assert environ_hit_key("b3J5", "ory_kratos_session=YWJj", NAME) == session_key(
        Credentials(token="b3J5")
    )
    assert environ_hit_key("b3J5\u00e9", "ory_kratos_session=YWJj", NAME) is None
    assert environ_hit_key(None, "ory_kratos_session=YWJj\u00e9", NAME) is None
    assert environ_hit_key(None, None, NAME) is None
    assert environ_hit_key(None, "a=1", NAME) is None


# --------------------------------------------------------------------- the hit itself


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(timezone.utc).timestamp()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def sync_client(fake: FakeKratos, clock: Clock) -> KratosClient:
    return KratosClient(
        fake.config(), http_client=httpx.Client(transport=fake.transport()), timer=clock
    )


def test_a_cached_session_is_a_hit_only_for_what_it_meets(fake: FakeKratos, clock: Clock) -> None:
    client = sync_client(fake, clock)
    aal1 = Credentials(cookie=fake.session("aal1").cookie)
    aal2 = Credentials(cookie=fake.session("aal2").cookie)
    client.check(aal1, "aal1")
    client.check(aal2, "aal2")
    assert client.cached_allow(session_key(aal1), Requirement("aal1")) is not None
    assert client.cached_allow(session_key(aal1), Requirement("aal2")) is None
    hit = client.cached_allow(session_key(aal2), Requirement("aal2"))
    assert isinstance(hit, CachedSession) and hit.session.aal == "aal2"
    # Freshness and methods are for the full decision only.
    assert client.cached_allow(session_key(aal2), Requirement("aal2", max_age=600)) is None
    assert client.cached_allow(session_key(aal2), Requirement("aal2", methods={"totp"})) is None
    assert client.cached_allow(b"s" + b"\0" * 16, Requirement("aal1")) is None


def test_an_expired_precomputed_entry_is_a_miss(fake: FakeKratos, clock: Clock) -> None:
    client = sync_client(fake, clock)
    credentials = Credentials(cookie=fake.session("aal2").cookie)
    client.check(credentials, "aal2")
    key = session_key(credentials)
    assert client.cached_allow(key, Requirement("aal2")) is not None
    clock.now += client.config.cache_ttl  # the cache entry lapses exactly now
    assert client.cached_allow(key, Requirement("aal2")) is None


def test_a_session_past_expires_at_is_a_miss_though_still_cached(clock: Clock) -> None:
    fake = FakeKratos(whoami_required_aal="aal1")
    session = fake.session("aal2")
    client = sync_client(fake, clock)
    credentials = Credentials(cookie=session.cookie)
    client.check(credentials, "aal2")
    hit = client.cached_allow(session_key(credentials), Requirement("aal2"))
    assert hit is not None
    # The wall clock passes expires_at while the cache entry (monotonic) would still live.
    hit.expires = clock.now
    assert client.cached_allow(session_key(credentials), Requirement("aal2")) is None
    hit.expires = clock.now + 1
    assert client.cached_allow(session_key(credentials), Requirement("aal2")) is hit


def test_a_session_decide_would_not_allow_is_never_a_hit() -> None:
    body: dict[str, Any] = {
        "id": "s1",
        "active": True,
        "authenticator_assurance_level": "aal2",
        "identity": {"id": "i1", "state": "inactive"},
    }
    from kratos_aal import Session

    assert CachedSession(Session.from_json(body)).rank == -1
    body["identity"]["state"] = "active"
    assert CachedSession(Session.from_json(body)).rank == 2
    body["authenticator_assurance_level"] = "aal0"
    assert CachedSession(Session.from_json(body)).rank == -1
    body.update(authenticator_assurance_level="aal1", active=False)
    assert CachedSession(Session.from_json(body)).rank == -1
    body.update(active=True, expires_at="2030-01-01T00:00:00Z")
    assert (
        CachedSession(Session.from_json(body)).expires
        == datetime(2030, 1, 1, tzinfo=timezone.utc).timestamp()
    )


def test_the_allow_decision_is_reused_per_requirement(fake: FakeKratos, clock: Clock) -> None:
    client = sync_client(fake, clock)
    credentials = Credentials(cookie=fake.session("aal2").cookie)
    rule = Requirement("aal2")
    first = client.check(credentials, rule)
    assert client.check(credentials, rule) is client.check(credentials, rule)
    other = client.check(credentials, Requirement("aal1"))
    assert first.allowed and other.allowed and other.requirement == Requirement("aal1")


async def test_the_async_client_takes_the_same_hit_path(fake: FakeKratos, clock: Clock) -> None:
    client = AsyncKratosClient(
        fake.config(), http_client=httpx.AsyncClient(transport=fake.transport()), timer=clock
    )
    credentials = Credentials(cookie=fake.session("aal2").cookie)
    assert (await client.check(credentials, "aal2")).allowed
    calls = fake.calls["/sessions/whoami"]
    assert (await client.check(credentials, "aal2")).allowed
    assert fake.calls["/sessions/whoami"] == calls
    assert client.cached_allow(session_key(credentials), Requirement("aal2")) is not None


def touch(cache: TTLCache, key: str) -> None:
    """Flag *key*'s entry as the hit path (KratosClient.cached_allow) does on a hit."""
    cache.index[key][3] = True


def test_a_touched_entry_gets_a_second_chance_at_eviction() -> None:
    cache = TTLCache(2, lambda: 0.0, prepare=lambda value: value)
    cache.put("a", 1, 5.0)
    cache.put("b", 2, 5.0)
    touch(cache, "a")  # read without the lock: not reordered, but flagged
    cache.put("c", 3, 5.0)
    assert set(cache.index) == {"a", "c"}
    assert cache.index["a"][3] is False  # the second chance is used up
    cache.put("d", 4, 5.0)
    assert set(cache.index) == {"c", "d"}


def test_every_entry_touched_still_evicts_one() -> None:
    cache = TTLCache(2, lambda: 0.0, prepare=lambda value: value)
    cache.put("a", 1, 5.0)
    cache.put("b", 2, 5.0)
    touch(cache, "a")
    touch(cache, "b")
    cache.put("c", 3, 5.0)
    assert len(cache) == 2 and set(cache.index) == {"b", "c"}


def test_a_hit_flags_its_entry_and_nothing_else_does(fake: FakeKratos, clock: Clock) -> None:
    client = sync_client(fake, clock)
    credentials = Credentials(cookie=fake.session("aal2").cookie)
    client.check(credentials, "aal2")
    key = session_key(credentials)

    def flagged() -> bool:
        return bool(client._cache.index[key][3])

    assert not flagged()
    assert client.cached_allow(key, Requirement("aal2"))
    assert flagged()
    client._cache.index[key][3] = False
    assert client.cached_allow(key, Requirement("aal2", max_age=5)) is None
    assert not flagged()  # not a hit: not flagged


def test_entries_not_for_the_hit_path_are_never_hits(fake: FakeKratos, clock: Clock) -> None:
    client = sync_client(fake, clock)
    session = fake.session("aal2")
    client.check(Credentials(cookie=session.cookie), "aal2")
    # What was learned of the identity's second factors is cached, but is not a session.
    learned = [key for key, entry in client._cache.index.items() if entry[2] is None]
    assert learned
    for key in learned:
        assert isinstance(key, bytes) and client.cached_allow(key, Requirement("aal1")) is None
    assert client.cached_allow(None, Requirement("aal1")) is None
    plain = TTLCache(4, lambda: 0.0)
    plain.put("a", 1, 5.0)
    assert plain.index["a"][2] is None and plain.get("a") == 1


# --------------------------------------------------------------------- call-count guard

#: Python calls a cache hit adds over the bare app, at most (the figures this ends with).
# Django's figure includes the two calls of the fake's clock (time.time is C in production).
# "starlette, hops": the request carries the hop cookie, so the response is relayed to clear it.
# "starlette": one call more per message (start, body), to see an event stream (SPEC §5c),
# and one to make that watch (a closure: it keeps the guard it made, see _watching).
# "drf": IsAAL2 over AllowAny; "drf, authenticated": KratosAuthentication too, whose hit
# the permission takes (62 calls when authentication took the whole whoami path). IsAAL1 and
# IsAAL2 call the check RequireAAL calls (they used to call a RequireAAL, one call more), and
# it makes the cross-origin and same-person checks' first tests without calling them.
MAX_ADDED_CALLS = {
    "starlette": 7,
    "starlette, hops": 8,
    "wsgi": 4,
    "django": 7,
    "drf": 8,
    "drf, authenticated": 11,
}
#: Python calls RequireAAL adds to a cache hit over an empty ``Depends``, at most: the hit
#: itself, and no dependency more for FastAPI to solve (one costs about 40 calls).
MAX_FASTAPI_CALLS_OVER_EMPTY = 4


def calls_of(run: Callable[[], Any]) -> int:
    """Return the fewest Python calls *run* makes in three runs.

    The garbage collector is off while counting: a collection in the middle of a run
    calls finalizers (of objects other tests left behind) that are not the hit path's.
    """
    counts = []
    for _ in range(3):
        count = 0

        def profile(frame: FrameType, event: str, arg: Any) -> None:
            nonlocal count
            if event == "call":
                count += 1

        gc.disable()
        sys.setprofile(profile)
        try:
            run()
        finally:
            sys.setprofile(None)
            gc.enable()
        counts.append(count)
    return min(counts)


@pytest.fixture
def aal2_session(fake: FakeKratos) -> Any:
    return fake.session("aal2")


@pytest.mark.parametrize("hops", [False, True], ids=["plain", "hops"])
def test_the_starlette_hit_path_makes_few_calls(
    fake: FakeKratos, aal2_session: Any, hops: bool
) -> None:
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    from kratos_aal.integrations.starlette import KratosAALMiddleware

    async def endpoint(request: Any) -> PlainTextResponse:
        return PlainTextResponse("ok")

    client = AsyncKratosClient(
        fake.config(), http_client=httpx.AsyncClient(transport=fake.transport())
    )
    routes = [Route("/billing", endpoint)]
    bare = Starlette(routes=routes)
    guarded = Starlette(
        routes=routes,
        middleware=[Middleware(KratosAALMiddleware, client=client, rules={"/billing": "aal2"})],
    )
    headers = [
        (b"host", b"testserver"),
        (b"accept", b"text/html"),
        (b"cookie", f"a=1; {aal2_session.cookie_header}".encode()),
    ]
    if hops:  # a loop counter the app does not know: cleared as any (not "hop, hop")
        headers.append((b"cookie", b"kratos_aal_hops=x"))
    scope = {"type": "http", "method": "GET", "path": "/billing", "headers": headers}
    statuses: list[int] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    loop = asyncio.new_event_loop()
    try:

        def run(app: Any) -> Callable[[], Any]:
            return lambda: loop.run_until_complete(app(dict(scope), receive, send))

        for app in (bare, guarded, guarded):
            run(app)()  # warm: the cache, the apps' middleware stacks, the hit's objects
        calls = fake.calls["/sessions/whoami"]
        added = calls_of(run(guarded)) - calls_of(run(bare))
    finally:
        loop.close()
    assert statuses == [200] * 9  # 3 warm-up runs, then 3 of each side counted
    assert fake.calls["/sessions/whoami"] == calls  # a hit indeed
    assert added <= MAX_ADDED_CALLS["starlette, hops" if hops else "starlette"], added


def test_the_wsgi_hit_path_makes_few_calls(fake: FakeKratos, aal2_session: Any) -> None:
    from kratos_aal.integrations.wsgi import KratosAALWSGIMiddleware

    def bare(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [])
        return [b"ok"]

    client = KratosClient(fake.config(), http_client=httpx.Client(transport=fake.transport()))
    guarded = KratosAALWSGIMiddleware(bare, client=client, rules={"/billing": "aal2"})
    environ = {"PATH_INFO": "/billing", "HTTP_COOKIE": f"a=1; {aal2_session.cookie_header}"}
    statuses: list[str] = []

    def run(app: Any) -> Callable[[], Any]:
        return lambda: app(dict(environ), lambda status, headers: statuses.append(status))

    run(guarded)()
    calls = fake.calls["/sessions/whoami"]
    added = calls_of(run(guarded)) - calls_of(run(bare))
    assert statuses == ["200 OK"] * 7 and fake.calls["/sessions/whoami"] == calls
    assert added <= MAX_ADDED_CALLS["wsgi"], added


def test_the_django_hit_path_makes_few_calls(fake_kratos: FakeKratos) -> None:
    from django.http import HttpResponse
    from django.test import RequestFactory

    from kratos_aal.integrations.django import require_aal2
    from kratos_aal.integrations.django.conf import override_clients

    def view(request: Any) -> HttpResponse:
        return HttpResponse("ok")

    session = fake_kratos.session("aal2")
    request = RequestFactory().get("/billing", HTTP_COOKIE=f"a=1; {session.cookie_header}")
    guarded = require_aal2(view)
    with override_clients(fake_kratos.client(), fake_kratos.async_client()):
        assert guarded(request).status_code == 200
        calls = fake_kratos.calls["/sessions/whoami"]
        added = calls_of(lambda: guarded(request)) - calls_of(lambda: view(request))
        assert request.kratos_session is not None
    assert fake_kratos.calls["/sessions/whoami"] == calls
    assert added <= MAX_ADDED_CALLS["django"], added


async def _nothing() -> None:
    return None


# Module-level, so that FastAPI can resolve these (string) annotations.
Empty = Annotated[None, Depends(_nothing)]
Aal2 = Annotated[Session, Depends(require_aal2)]
FreshAal2 = Annotated[Session, Depends(RequireAAL("aal2", max_age=60))]


def test_require_aal_makes_few_calls_over_an_empty_depends(fake: FakeKratos) -> None:
    from kratos_aal.integrations.fastapi import KratosAALMiddleware

    client = AsyncKratosClient(
        fake.config(), http_client=httpx.AsyncClient(transport=fake.transport())
    )
    empty, guarded = FastAPI(), FastAPI()
    for app in (empty, guarded):
        app.add_middleware(KratosAALMiddleware, client=client)

    @empty.get("/billing")
    async def empty_billing(_: Empty) -> str:
        return "ok"

    @guarded.get("/billing")
    async def billing(session: Aal2) -> str:
        return session.id

    session = fake.session("aal2")
    scope = {
        "type": "http",
        "method": "GET",
        "path": "/billing",
        "query_string": b"",
        "headers": [(b"host", b"testserver"), (b"cookie", session.cookie_header.encode())],
    }
    bodies: list[bytes] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.body":
            bodies.append(message["body"])

    loop = asyncio.new_event_loop()
    try:

        def run(app: Any) -> Callable[[], Any]:
            return lambda: loop.run_until_complete(app(dict(scope), receive, send))

        for app in (empty, guarded, guarded):
            run(app)()
        calls = fake.calls["/sessions/whoami"]
        added = calls_of(run(guarded)) - calls_of(run(empty))
    finally:
        loop.close()
    # calls_of runs each side three times: the guarded answers, then the empty ones.
    assert bodies[-6:] == [f'"{session.id}"'.encode()] * 3 + [b'"ok"'] * 3
    assert fake.calls["/sessions/whoami"] == calls
    assert added <= MAX_FASTAPI_CALLS_OVER_EMPTY, added


def test_require_aal_declares_the_cookie_and_session_token_the_token() -> None:
    from fastapi import APIRouter, Security

    from kratos_aal.integrations.fastapi import session_token

    app = FastAPI()

    @app.get("/pay")
    async def pay(session: FreshAal2) -> str:
        return session.id

    router = APIRouter(dependencies=[Security(session_token)])

    @router.get("/api/pay")
    async def api_pay(session: FreshAal2) -> str:
        return session.id

    app.include_router(router)
    schema = app.openapi()
    # One scheme per dependency FastAPI solves: RequireAAL itself is the cookie's.
    assert schema["paths"]["/pay"]["get"]["security"] == [{"KratosSessionCookie": []}]
    assert {"KratosSessionCookie": []} in schema["paths"]["/api/pay"]["get"]["security"]
    assert {"KratosSessionToken": []} in schema["paths"]["/api/pay"]["get"]["security"]
    schemes = schema["components"]["securitySchemes"]
    assert schemes["KratosSessionCookie"]["in"] == "cookie"
    assert "X-Session-Token" in schemes["KratosSessionCookie"]["description"]
    assert schemes["KratosSessionToken"] == {
        "type": "apiKey",
        "in": "header",
        "name": "X-Session-Token",
        "description": "An Ory Kratos session token (`Authorization: Bearer` works too).",
    }


# ------------------------------------------------------------- what the hit path shares


def starlette_app(fake: FakeKratos, endpoint: Callable[..., Any]) -> Any:
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.routing import Route

    from kratos_aal.integrations.starlette import KratosAALMiddleware

    return Starlette(
        routes=[Route("/billing", endpoint)],
        middleware=[
            Middleware(KratosAALMiddleware, client=fake.async_client(), rules={"/billing": "aal2"})
        ],
    )


async def get(app: Any, cookie: str) -> httpx.Response:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as http:
        return await http.get("/billing", headers={"Cookie": cookie})


async def test_shared_auth_and_user_cannot_be_changed(fake: FakeKratos) -> None:
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse

    seen: list[tuple[Any, Any]] = []
    refused: list[str] = []

    async def endpoint(request: Request) -> PlainTextResponse:
        seen.append((request.auth, request.user))
        for change in (
            lambda: request.auth.scopes.append("admin"),
            lambda: setattr(request.auth, "scopes", ["admin"]),
            lambda: setattr(request.user, "session", None),
        ):
            try:
                change()
            except AttributeError as error:
                refused.append(str(error))
        return PlainTextResponse(" ".join(request.auth.scopes))

    app = starlette_app(fake, endpoint)
    session = fake.session("aal2")
    replies = [await get(app, session.cookie_header) for _ in range(3)]
    assert [r.text for r in replies] == ["authenticated aal1 aal2"] * 3
    assert len(refused) == 9
    # The first request went the whole way; the next two were cache hits sharing objects.
    assert seen[1][0] is seen[2][0] and seen[1][1] is seen[2][1]
    assert seen[2][1].session.id == session.id


async def test_a_hit_still_clears_the_hop_cookie(fake: FakeKratos) -> None:
    from starlette.responses import PlainTextResponse

    async def endpoint(request: Any) -> PlainTextResponse:
        return PlainTextResponse("ok")

    app = starlette_app(fake, endpoint)
    session = fake.session("aal2")
    assert (await get(app, session.cookie_header)).status_code == 200  # cached now
    hops = await get(app, f"{session.cookie_header}; kratos_aal_hops=abc.2.1")
    assert "kratos_aal_hops=;" in hops.headers.get("set-cookie", "")
    plain = await get(app, session.cookie_header)
    assert plain.status_code == 200 and "set-cookie" not in plain.headers


async def test_a_hit_answers_a_denial_raised_below(fake: FakeKratos) -> None:
    from kratos_aal._web import WebResponse
    from kratos_aal.integrations.starlette import KratosDenied

    async def endpoint(request: Any) -> Any:
        raise KratosDenied(WebResponse(403, [("content-type", "text/plain")], b"no"))

    app = starlette_app(fake, endpoint)
    session = fake.session("aal2")
    for _ in range(2):  # the whole way, then a hit
        reply = await get(app, session.cookie_header)
        assert (reply.status_code, reply.text) == (403, "no")


# --------------------------------------------------------------------- the miss path


def _run_on(workers: Any) -> int:
    """Run one job on *workers*; return the ident of the thread that ran it."""
    import threading

    seen: list[int] = []
    done = threading.Event()

    def job() -> None:
        seen.append(threading.get_ident())
        done.set()

    workers.submit(job)
    assert done.wait(10)
    return seen[0]


def test_blocking_exchanges_reuse_an_idle_thread() -> None:
    import time

    from kratos_aal._exchange import _Exchanges

    workers = _Exchanges(keep=2, linger=10)  # it may not retire while a busy machine waits
    first = _run_on(workers)
    deadline = time.monotonic() + 10
    while not workers._idle and time.monotonic() < deadline:  # idle just after the job
        time.sleep(0.01)
    assert workers._idle == 1
    assert _run_on(workers) == first


def test_blocking_exchanges_keep_no_more_idle_threads_than_asked() -> None:
    import threading
    import time

    from kratos_aal._exchange import _Exchanges

    workers = _Exchanges(keep=0)
    before = set(threading.enumerate())  # others' threads may end meanwhile: not counted
    _run_on(workers)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and set(threading.enumerate()) - before:
        time.sleep(0.01)
    assert not set(threading.enumerate()) - before and workers._idle == 0
    _run_on(workers)  # a new thread then


async def test_a_shared_cache_is_shared_by_the_hit_path_too(fake: FakeKratos, clock: Clock) -> None:
    # Django's sync and async clients keep one cache: what a WSGI view cached is a hit
    # for an async view, on the lock-free path as on the locked one.
    sync = sync_client(fake, clock)
    async_ = AsyncKratosClient(
        fake.config(), http_client=httpx.AsyncClient(transport=fake.transport()), timer=clock
    )
    async_._share_cache(sync)
    credentials = Credentials(cookie=fake.session("aal2").cookie)
    assert sync.check(credentials, "aal2").allowed
    calls = fake.calls["/sessions/whoami"]
    assert async_.cached_allow(session_key(credentials), Requirement("aal2")) is not None
    assert (await async_.check(credentials, "aal2")).allowed
    assert fake.calls["/sessions/whoami"] == calls


# ------------------------------------------------------- the adapters take the hit path
# A hit path switched off is only slower: the full path allows the same request from the
# same cache entry. So these watch the client's full check, which a hit never reaches.

#: How each request of a test carries the session: (cookie name of the fake, header).
CARRIERS = {
    "cookie": ("ory_kratos_session", "cookie"),
    "token": ("ory_kratos_session", "token"),
    "own cookie name": ("my_session", "cookie"),
}


def counted_checks(monkeypatch: pytest.MonkeyPatch, client: Any) -> list[object]:
    """Count the client's full checks (the whole way) from now on; return the count list."""
    calls: list[object] = []
    check = client.check

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls.append(args[0])
        return check(*args, **kwargs)

    monkeypatch.setattr(client, "check", counting)
    return calls


def carried(fake: FakeKratos, how: str) -> tuple[Any, dict[str, str]]:
    session = fake.session("aal2")
    if CARRIERS[how][1] == "token":
        return session, {"X-Session-Token": session.token}
    return session, {"Cookie": session.cookie_header}


def wsgi_stack(fake: FakeKratos, **rules: str) -> tuple[Any, list[dict[str, Any]]]:
    """Return a KratosAALWSGIMiddleware over an app that records each environ it gets."""
    from kratos_aal.integrations.wsgi import ENVIRON_KEY, KratosAALWSGIMiddleware

    seen: list[dict[str, Any]] = []

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        seen.append(environ)
        start_response("200 OK", [("Content-Type", "text/plain")])
        session = environ.get(ENVIRON_KEY)
        return [session.id.encode() if session else b"public"]

    rules = rules or {"/pay": "aal2"}
    return KratosAALWSGIMiddleware(app, client=fake.client(), rules=rules), seen


@pytest.mark.parametrize("how", sorted(CARRIERS))
def test_a_wsgi_hit_reaches_the_app_without_the_full_check(
    how: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeKratos(whoami_required_aal="aal1", cookie_name=CARRIERS[how][0])
    middleware, _ = wsgi_stack(fake)
    session, headers = carried(fake, how)
    with httpx.Client(
        transport=httpx.WSGITransport(app=middleware), base_url="http://testserver"
    ) as http:
        assert http.get("/pay", headers=headers).text == session.id  # the whole way
        checks = counted_checks(monkeypatch, middleware.client)
        reply = http.get("/pay", headers=headers)
    assert (reply.status_code, reply.text) == (200, session.id)
    assert checks == []


def test_a_wsgi_allow_with_the_hop_cookie_goes_the_whole_way_and_clears_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake = FakeKratos(whoami_required_aal="aal1")
    middleware, _ = wsgi_stack(fake)
    session = fake.session("aal2")
    with httpx.Client(
        transport=httpx.WSGITransport(app=middleware), base_url="http://testserver"
    ) as http:
        assert http.get("/pay", headers={"Cookie": session.cookie_header}).status_code == 200
        checks = counted_checks(monkeypatch, middleware.client)
        hops = {"Cookie": f"{session.cookie_header}; kratos_aal_hops=abc.1.2"}
        reply = http.get("/pay", headers=hops)
    assert (reply.status_code, reply.text) == (200, session.id)
    assert len(checks) == 1  # the hop cookie is cleared on the full path
    assert "kratos_aal_hops=;" in reply.headers["set-cookie"]


def test_a_wsgi_app_clearing_the_hop_cookie_still_passes_exc_info_on() -> None:
    from wsgiref.util import setup_testing_defaults

    fake = FakeKratos(whoami_required_aal="aal1")
    session = fake.session("aal2")
    failure = ValueError("the app's own error page")

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        try:
            raise failure
        except ValueError:
            start_response("500 Internal Server Error", [], sys.exc_info())
        return [b"oops"]

    from kratos_aal.integrations.wsgi import KratosAALWSGIMiddleware

    middleware = KratosAALWSGIMiddleware(app, client=fake.client(), rules={"/pay": "aal2"})
    environ: dict[str, Any] = {
        "PATH_INFO": "/pay",
        "HTTP_COOKIE": f"{session.cookie_header}; kratos_aal_hops=abc.1.2",
    }
    setup_testing_defaults(environ)
    started: list[tuple[Any, ...]] = []
    assert middleware(environ, lambda *args: started.append(args)) == [b"oops"]
    [(status, headers, exc_info)] = started
    assert status.startswith("500") and exc_info[1] is failure
    assert any(name == "Set-Cookie" and "kratos_aal_hops=;" in v for name, v in headers)


def test_a_wsgi_environ_without_path_info_is_the_root() -> None:
    # PEP 3333: PATH_INFO may be empty, and some servers leave it out for the root.
    from wsgiref.util import setup_testing_defaults

    fake = FakeKratos(whoami_required_aal="aal1")
    middleware, seen = wsgi_stack(fake, **{"/": "aal2"})
    environ: dict[str, Any] = {"HTTP_ACCEPT": "application/json"}
    setup_testing_defaults(environ)
    del environ["PATH_INFO"]
    started: list[tuple[Any, ...]] = []
    body = b"".join(middleware(environ, lambda *args: started.append(args)))
    assert started[0][0].startswith("401") and b"session_inactive" in body
    assert seen == []


def test_observing_a_wsgi_hit_records_and_fails_nothing(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    from kratos_aal import _observe

    fake = FakeKratos(whoami_required_aal="aal1")
    middleware, _ = wsgi_stack(fake)
    session = fake.session("aal2")
    audit = logging.getLogger(_observe.AUDIT_LOGGER)
    monkeypatch.setattr(audit, "level", logging.INFO)
    _observe.refresh()  # an aal2 allow is one to audit now, if it came back from Kratos
    try:
        caplog.set_level(logging.DEBUG, logger="kratos_aal")
        with httpx.Client(
            transport=httpx.WSGITransport(app=middleware), base_url="http://testserver"
        ) as http:
            for _ in range(2):  # the whole way, then a hit
                assert (
                    http.get("/pay", headers={"Cookie": session.cookie_header}).status_code == 200
                )
    finally:
        monkeypatch.undo()
        _observe.refresh()
    assert "could not record" not in caplog.text


def starlette_stack(fake: FakeKratos, state: dict[str, str] | None) -> Any:
    """Return a Starlette app guarding POST /billing, below an outer app giving *state*."""
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    from kratos_aal.integrations.starlette import KratosAALMiddleware, get_session

    async def endpoint(request: Request) -> PlainTextResponse:
        session = get_session(request)
        body = (await request.body()).decode()
        mine = request.scope["state"].get("mine")
        return PlainTextResponse(f"{session.id if session else None} {body} {mine}")

    app = Starlette(
        routes=[Route("/billing", endpoint, methods=["POST"])],
        middleware=[
            Middleware(KratosAALMiddleware, client=fake.async_client(), rules={"/billing": "aal2"})
        ],
    )
    if state is None:
        return app

    async def outer(scope: Any, receive: Any, send: Any) -> None:
        scope["state"] = dict(state)  # as a server gives the app's lifespan state
        await app(scope, receive, send)

    return outer


@pytest.mark.parametrize("state", [None, {"mine": "kept"}], ids=["no state", "state"])
@pytest.mark.parametrize("how", sorted(CARRIERS))
async def test_a_starlette_hit_reaches_the_app_without_the_full_check(
    how: str, state: dict[str, str] | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeKratos(whoami_required_aal="aal1", cookie_name=CARRIERS[how][0])
    client = fake.async_client()
    monkeypatch.setattr(fake, "async_client", lambda: client)
    app = starlette_stack(fake, state)
    session, headers = carried(fake, how)
    mine = state["mine"] if state else None
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as http:
        first = await http.post("/billing", headers=headers, content=b"paid")
        assert first.text == f"{session.id} paid {mine}"  # the whole way
        checks = counted_checks(monkeypatch, client)
        reply = await http.post("/billing", headers=headers, content=b"paid")
    assert (reply.status_code, reply.text) == (200, f"{session.id} paid {mine}")
    assert checks == []


async def test_a_scope_without_headers_is_a_request_without_credentials() -> None:
    from kratos_aal.integrations.starlette import KratosAALMiddleware

    async def app(scope: Any, receive: Any, send: Any) -> None:
        raise AssertionError("a guarded path without credentials reached the app")

    fake = FakeKratos(whoami_required_aal="aal1")
    middleware = KratosAALMiddleware(app, client=fake.async_client(), rules={"/pay": "aal2"})
    sent: list[dict[str, Any]] = []

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(dict(message))

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    # No "headers": every other reader of the scope takes none for no headers too.
    scope = {"type": "http", "method": "GET", "path": "/pay", "server": ("testserver", 80)}
    await middleware(scope, receive, send)
    assert sent[0]["status"] == 303


async def test_require_aal_on_a_hit_reaches_the_route_without_the_full_check(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from kratos_aal.integrations.fastapi import KratosAALMiddleware

    fake = FakeKratos(whoami_required_aal="aal1")
    client = fake.async_client()
    app = FastAPI()
    app.add_middleware(KratosAALMiddleware, client=client)

    @app.get("/pay")
    async def pay(session: Annotated[Session, Depends(require_aal2)]) -> str:
        return session.id

    session = fake.session("aal2")
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as http:
        assert (await http.get("/pay", headers={"Cookie": session.cookie_header})).json() == (
            session.id
        )
        checks = counted_checks(monkeypatch, client)
        reply = await http.get("/pay", headers={"Cookie": session.cookie_header})
    assert (reply.status_code, reply.json()) == (200, session.id)
    assert checks == []


@pytest.mark.parametrize("hit", [False, True], ids=["whole way", "hit"])
@pytest.mark.parametrize("app_headers", [None, [(b"content-type", b"text/plain")]])
async def test_clearing_the_hop_cookie_keeps_the_apps_headers(
    hit: bool, app_headers: list[tuple[bytes, bytes]] | None
) -> None:
    from kratos_aal.integrations.starlette import KratosAALMiddleware

    async def app(scope: Any, receive: Any, send: Any) -> None:
        start: dict[str, Any] = {"type": "http.response.start", "status": 200}
        if app_headers is not None:  # headers are optional in ASGI
            start["headers"] = app_headers
        await send(start)
        await send({"type": "http.response.body", "body": b"ok"})

    fake = FakeKratos(whoami_required_aal="aal1")
    middleware = KratosAALMiddleware(app, client=fake.async_client(), rules={"/pay": "aal2"})
    cookie = fake.session("aal2").cookie_header.encode()

    async def run(cookie: bytes) -> dict[str, Any]:
        sent: list[dict[str, Any]] = []

        async def send(message: MutableMapping[str, Any]) -> None:
            sent.append(dict(message))

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b""}

        headers = [(b"host", b"testserver"), (b"cookie", cookie)]
        scope = {"type": "http", "method": "GET", "path": "/pay", "headers": headers}
        await middleware(scope, receive, send)
        return sent[0]

    if hit:
        assert (await run(cookie))["status"] == 200  # the whole way: cached now
    start = await run(cookie + b"; kratos_aal_hops=abc.1.2")
    *kept, (name, value) = start["headers"]
    assert kept == (app_headers or [])
    assert name == b"set-cookie" and value.startswith(b"kratos_aal_hops=;")


@pytest.mark.parametrize("authenticated", [False, True], ids=["IsAAL2", "with-authentication"])
def test_the_drf_hit_path_makes_few_calls(fake_kratos: FakeKratos, authenticated: bool) -> None:
    from django.test import RequestFactory
    from rest_framework.permissions import AllowAny
    from rest_framework.response import Response
    from rest_framework.views import APIView

    from kratos_aal.integrations.django.conf import override_clients
    from kratos_aal.integrations.drf import IsAAL2, KratosAuthentication

    class Bare(APIView):  # type: ignore[misc]
        authentication_classes: list[Any] = []
        permission_classes = [AllowAny]

        def get(self, request: Any) -> Response:
            return Response("ok")

    class Guarded(Bare):
        authentication_classes = [KratosAuthentication] if authenticated else []
        permission_classes = [IsAAL2]

    session = fake_kratos.session("aal2")
    factory = RequestFactory()

    def run(view: Any) -> Callable[[], Any]:
        def one() -> None:
            request = factory.get("/billing", HTTP_COOKIE=f"a=1; {session.cookie_header}")
            assert view(request).status_code == 200

        return one

    bare, guarded = Bare.as_view(), Guarded.as_view()
    with override_clients(fake_kratos.client(), fake_kratos.async_client()):
        run(guarded)()
        calls = fake_kratos.calls["/sessions/whoami"]
        added = calls_of(run(guarded)) - calls_of(run(bare))
    assert fake_kratos.calls["/sessions/whoami"] == calls == 1
    assert added <= MAX_ADDED_CALLS["drf, authenticated" if authenticated else "drf"], added


def _cookie_get(path: str, session: Any) -> dict[str, Any]:
    """An ASGI GET of *path* carrying *session*'s cookie, as a server hands it over."""
    return {
        "type": "http",
        "method": "GET",
        "path": path,
        "headers": [(b"cookie", session.cookie_header.encode())],
    }


async def _request() -> dict[str, Any]:
    """The ``receive`` of a request without a body."""
    return {"type": "http.request", "body": b""}


async def test_a_starlette_hit_keeps_its_requirement_without_making_a_list(
    fake: FakeKratos, aal2_session: Any
) -> None:
    # A list made per request and kept in the scope set off the collector about once per 70
    # requests of FastAPI's RequireAAL under uvicorn with 64 in flight (14 gen0 collections
    # per 1,000 requests, 0.35 without it; p99 28-42 ms, 13-15 without it; issue 28).
    from kratos_aal import Requirement
    from kratos_aal.integrations._asgi_live import GUARD_KEY
    from kratos_aal.integrations.starlette import KratosAALMiddleware

    seen: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope.get(GUARD_KEY))
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    client = fake.async_client()
    guarded = KratosAALMiddleware(app, client=client, rules={"/billing": "aal2"})
    scope = _cookie_get("/billing", aal2_session)

    async def send(message: Any) -> None:
        return None

    for _ in range(2):  # the whole way, then a hit
        await guarded(dict(scope), _request, send)
    assert all(type(one) is Requirement and one.aal.value == "aal2" for one in seen), seen


async def test_a_stream_allowed_by_a_requirement_subclass_is_watched(
    fake: FakeKratos, aal2_session: Any
) -> None:
    # Requirement is public: a rule may be an app's own subclass of it. Kept in the scope
    # alone, it must still be watched when the response is an event stream, and a second
    # requirement (a dependency below) joins it.
    from kratos_aal import Requirement
    from kratos_aal.integrations._asgi_live import GUARD_KEY, Guard
    from kratos_aal.integrations._starlette_middleware import _allowed
    from kratos_aal.integrations.starlette import KratosAALMiddleware

    class Strict(Requirement):
        pass

    watched: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        _allowed(scope, Requirement("aal1"))  # as a dependency that allows it too
        stream = [(b"content-type", b"text/event-stream; charset=utf-8")]
        await send({"type": "http.response.start", "status": 200, "headers": stream})
        guard = scope.get(GUARD_KEY)
        watched.append(type(guard) is Guard and len(guard.connections))
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    client = fake.async_client()
    guarded = KratosAALMiddleware(app, client=client, rules={"/events": Strict("aal2")})
    scope = _cookie_get("/events", aal2_session)

    async def send(message: Any) -> None:
        return None

    for _ in range(2):  # the whole way, then a hit
        await guarded(dict(scope), _request, send)
    assert watched == [2, 2]


@pytest.mark.parametrize("inner_rule", ["aal1", None], ids=["both-rules", "outer-rule-only"])
async def test_a_stream_under_two_middlewares_is_watched_once_and_sent(
    fake: FakeKratos, aal2_session: Any, inner_rule: str | None
) -> None:
    # A mounted app with its own middleware under the app's: on a cache hit the inner
    # middleware's guard sends through the outer one's send, which must pass it on, not
    # hand it back to that guard (a RecursionError and nothing sent, before the fix).
    from kratos_aal.integrations._asgi_live import GUARD_KEY, Guard
    from kratos_aal.integrations.starlette import KratosAALMiddleware

    watched: list[bool] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        stream = [(b"content-type", b"text/event-stream")]
        await send({"type": "http.response.start", "status": 200, "headers": stream})
        watched.append(type(scope.get(GUARD_KEY)) is Guard)
        await send({"type": "http.response.body", "body": b"data: x\n\n", "more_body": False})

    client = fake.async_client()
    inner_rules = {"/events": inner_rule} if inner_rule else {}
    inner = KratosAALMiddleware(app, client=client, rules=inner_rules)
    outer = KratosAALMiddleware(inner, client=client, rules={"/events": "aal2"})
    scope = _cookie_get("/events", aal2_session)

    for _ in range(3):  # the whole way, then hits
        sent: list[str] = []

        async def send(message: Any, sent: list[str] = sent) -> None:
            sent.append(message["type"])

        await asyncio.wait_for(outer(dict(scope), _request, send), 10)
        assert sent == ["http.response.start", "http.response.body"]
    assert watched == [True, True, True]

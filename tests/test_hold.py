"""The client under the conditions users run it in (issue "Hold under real servers").

Event loops that come and go over a pooled connection to a real socket, a Kratos that drips
its answer, odd headers and bodies, duplicate cookies, an injected HTTP client's cookie jar,
and a system clock that steps back.
"""

from __future__ import annotations

import asyncio
import gc
import json
import socket
import ssl
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

import kratos_aal._client
from kratos_aal import (
    AsyncKratosClient,
    Credentials,
    KratosClient,
    KratosConfig,
    Outcome,
    Requirement,
    Session,
)
from kratos_aal._decision import decide
from kratos_aal.integrations.starlette import KratosAALMiddleware
from kratos_aal.testing import FakeKratos, reserve_port, serve

APP = "http://127.0.0.1:8000/billing"
WHOAMI = "/sessions/whoami"


@pytest.fixture
def served() -> Iterator[tuple[FakeKratos, str]]:
    """FakeKratos on a real loopback socket: pooled keep-alive connections, as in production."""
    sock = reserve_port()
    host, port = sock.getsockname()
    fake = FakeKratos(public_url=f"http://{host}:{port}", whoami_required_aal="aal1")
    with serve(fake, sock=sock) as url:
        yield fake, url


def cookie(fake: FakeKratos, aal: str = "aal2") -> Credentials:
    return Credentials(cookie=fake.session(aal).cookie)


# ------------------------------------------------------------------ event loops (item 3)


def test_one_async_client_across_event_loops(served: tuple[FakeKratos, str]) -> None:
    # asyncio.run() per call: each run is a new loop, as under async_to_sync.
    fake, url = served
    client = AsyncKratosClient(KratosConfig(public_url=url, cache_ttl=0))
    credentials = cookie(fake)
    outcomes = [asyncio.run(client.check(credentials, "aal2", APP)).outcome for _ in range(5)]
    assert outcomes == [Outcome.ALLOW] * 5
    assert fake.calls[WHOAMI] == 5


def test_a_new_loop_does_not_load_the_ca_bundle_again(
    served: tuple[FakeKratos, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Under Django's WSGI handler every async view runs on a new loop, so a new pool: each
    # built its own TLS context, loading the CA bundle (24 ms, and ~1 MB of allocations
    # that left the worker's memory fragmented, per request).
    fake, url = served
    loads: list[object] = []
    real = ssl.SSLContext.load_verify_locations

    def counted(context: ssl.SSLContext, *args: Any, **kwargs: Any) -> None:
        loads.append(context)
        real(context, *args, **kwargs)

    monkeypatch.setattr(ssl.SSLContext, "load_verify_locations", counted)
    client = AsyncKratosClient(KratosConfig(public_url=url, cache_ttl=0))
    credentials = cookie(fake)
    outcomes = [asyncio.run(client.check(credentials, "aal2", APP)).outcome for _ in range(4)]
    assert outcomes == [Outcome.ALLOW] * 4
    assert len(loads) == 1


def test_async_client_works_again_after_aclose(served: tuple[FakeKratos, str]) -> None:
    fake, url = served
    client = AsyncKratosClient(KratosConfig(public_url=url, cache_ttl=0))
    credentials = cookie(fake)

    async def check_then_close() -> Outcome:
        decision = await client.check(credentials, "aal2", APP)
        await client.aclose()
        return decision.outcome

    assert asyncio.run(check_then_close()) is Outcome.ALLOW
    assert asyncio.run(check_then_close()) is Outcome.ALLOW
    assert fake.calls[WHOAMI] == 2


async def test_async_client_pools_within_one_loop(served: tuple[FakeKratos, str]) -> None:
    fake, url = served
    client = AsyncKratosClient(KratosConfig(public_url=url, cache_ttl=0))
    credentials = cookie(fake)
    for _ in range(3):
        assert (await client.check(credentials, "aal2", APP)).allowed
    assert len(client._loops) == 1  # one pool for this loop, reused
    await client.aclose()
    assert len(client._loops) == 0


def _pool_of_running_loop(client: AsyncKratosClient) -> httpx.AsyncClient:
    loop = asyncio.get_running_loop()
    pools = getattr(loop, kratos_aal._pools._POOLS)
    return pools[client][0]  # type: ignore[no-any-return]


def test_loops_and_pools_are_freed_when_each_loop_ends(served: tuple[FakeKratos, str]) -> None:
    # Django's WSGI handler runs each async view on a loop of its own (asyncio.run in
    # async_to_sync): a pool kept past its loop held that loop, ~0.8 MB a request.
    fake, url = served
    client = AsyncKratosClient(KratosConfig(public_url=url))
    loops: list[weakref.ref[asyncio.AbstractEventLoop]] = []
    pools: list[weakref.ref[httpx.AsyncClient]] = []
    kept: list[httpx.AsyncClient] = []

    async def one(index: int) -> None:
        credentials = Credentials(cookie=f"random-{index}")
        assert await client.whoami(credentials) is None  # a real exchange on the pool
        http = _pool_of_running_loop(client)
        loops.append(weakref.ref(asyncio.get_running_loop()))
        pools.append(weakref.ref(http))
        if index < 3:
            kept.append(http)

    for index in range(40):
        asyncio.run(one(index))
    gc.collect()
    assert [ref for ref in loops if ref() is not None] == []
    assert [ref for ref in pools[3:] if ref() is not None] == []
    # Closed on their own loop when it shut down (no unclosed transport warns later).
    assert all(http.is_closed for http in kept)
    assert len(client._loops) == 0
    assert fake.calls[WHOAMI] == 40


def test_a_pool_goes_with_its_client_on_a_loop_that_lives_on() -> None:
    # uvicorn's one loop outlives clients made and dropped (tests, reloads): the
    # loop holds its pools only as long as their client lives, and closes them.
    fake = FakeKratos(whoami_required_aal="aal1")
    session = fake.session("aal2")

    async def main() -> None:
        with serve(fake) as url:
            clients = [AsyncKratosClient(KratosConfig(public_url=url)) for _ in range(3)]
            pools = []
            for client in clients:
                assert await client.whoami(Credentials(cookie=session.cookie)) is not None
                pools.append(_pool_of_running_loop(client))
            refs = [weakref.ref(client) for client in clients]
            del clients, client
            gc.collect()
            assert [ref for ref in refs if ref() is not None] == []
            assert len(getattr(asyncio.get_running_loop(), kratos_aal._pools._POOLS)) == 0
            for _ in range(10):  # the loop closes each dropped pool in a task of its own
                await asyncio.sleep(0)
            assert all(http.is_closed for http in pools)

    asyncio.run(main())


def test_a_loop_that_takes_no_attribute_gets_a_client_per_exchange(
    served: tuple[FakeKratos, str],
) -> None:
    class Slotted(asyncio.SelectorEventLoop):
        def __setattr__(self, name: str, value: Any) -> None:
            if name == kratos_aal._pools._POOLS:
                raise AttributeError(name)
            super().__setattr__(name, value)

    fake, url = served
    client = AsyncKratosClient(KratosConfig(public_url=url, cache_ttl=0))
    credentials = cookie(fake)
    loop = Slotted()
    try:
        for _ in range(2):
            decision = loop.run_until_complete(client.check(credentials, "aal2", APP))
            assert decision.outcome is Outcome.ALLOW
        assert len(client._loops) == 0
        assert not hasattr(loop, kratos_aal._pools._POOLS)
        loop.run_until_complete(client.aclose())
    finally:
        loop.close()
    assert fake.calls[WHOAMI] == 2


def _starlette_app(url: str) -> Starlette:
    async def billing(request: Request) -> PlainTextResponse:
        return PlainTextResponse("billing")

    return Starlette(
        routes=[Route("/billing", billing)],
        middleware=[
            Middleware(
                KratosAALMiddleware,
                config=KratosConfig(public_url=url, cache_ttl=0),
                rules={"/billing": "aal2"},
            )
        ],
    )


def test_starlette_testclient_without_with(served: tuple[FakeKratos, str]) -> None:
    # Without `with`, every request runs on an event loop of its own.
    fake, url = served
    http = TestClient(_starlette_app(url), cookies={fake.cookie_name: fake.session("aal2").cookie})
    statuses = [http.get("/billing").status_code for _ in range(4)]
    assert statuses == [200] * 4


def test_starlette_lifespan_twice(served: tuple[FakeKratos, str]) -> None:
    # The middleware's own client is closed at shutdown, and must work after a new startup.
    fake, url = served
    app = _starlette_app(url)
    session_cookie = {fake.cookie_name: fake.session("aal2").cookie}
    for _ in range(2):
        with TestClient(app, cookies=session_cookie) as http:
            assert http.get("/billing").status_code == 200
            assert http.get("/billing").status_code == 200


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/billing/async/", "/billing/"], ids=["async-view", "sync-view"])
def test_django_wsgi_views_on_a_pooled_connection(
    served: tuple[FakeKratos, str], path: str
) -> None:
    # Django's test Client is the WSGI handler: async views run through async_to_sync,
    # on a new event loop for every request.
    from django.test import Client

    from kratos_aal.integrations.django.conf import override_clients

    fake, url = served
    config = KratosConfig(public_url=url, cache_ttl=0)
    with KratosClient(config) as blocking, override_clients(blocking, AsyncKratosClient(config)):
        browser = Client()
        browser.cookies[fake.cookie_name] = fake.session("aal2").cookie
        statuses = [browser.get(path).status_code for _ in range(4)]
    assert statuses == [200] * 4


# --------------------------------------------------------------- odd answers (item 5)


def _mock(
    status: int, headers: dict[str, str], body: bytes, calls: list[int] | None = None
) -> httpx.MockTransport:
    def answer(request: httpx.Request) -> httpx.Response:
        if calls is not None:
            calls.append(1)
        # As bytes, the way a server may send them (httpx would refuse non-ASCII str).
        raw = [(k.encode(), v.encode()) for k, v in headers.items()]
        return httpx.Response(status, headers=raw, content=body)

    return httpx.MockTransport(answer)


def _session_body(expires_in: float = 3600) -> bytes:
    now = datetime.now(timezone.utc)
    at = now.isoformat()
    method = {"aal": "aal1", "completed_at": at}
    return json.dumps(
        {
            "id": "s1",
            "active": True,
            "authenticator_assurance_level": "aal2",
            "expires_at": (now + timedelta(seconds=expires_in)).isoformat(),
            "authenticated_at": at,
            "authentication_methods": [
                {**method, "method": "password"},
                {**method, "method": "totp", "aal": "aal2"},
            ],
            "identity": {"id": "i1", "schema_id": "default", "state": "active", "traits": {}},
        }
    ).encode()


def _both(transport: httpx.MockTransport, **config: Any) -> tuple[KratosClient, AsyncKratosClient]:
    settings = KratosConfig(public_url="http://kratos:4433", **config)
    return (
        KratosClient(settings, http_client=httpx.Client(transport=transport)),
        AsyncKratosClient(settings, http_client=httpx.AsyncClient(transport=transport)),
    )


async def _decide_both(transport: httpx.MockTransport, **config: Any) -> list[Any]:
    blocking, awaitable = _both(transport, **config)
    credentials = Credentials(cookie="abc")
    return [
        blocking.check(credentials, "aal2", APP),
        await awaitable.check(credentials, "aal2", APP),
    ]


@pytest.mark.parametrize("value", ["¹", "²", "١٢", "\U0001d7d7", "12x", "-5", "1e3", " "])
async def test_odd_retry_after_is_ignored(value: str) -> None:
    decisions = await _decide_both(_mock(429, {"Retry-After": value}, b"{}"))
    for decision in decisions:
        assert decision.outcome is Outcome.UNAVAILABLE
        assert decision.retry_after is not None and 0 < decision.retry_after < 60


async def test_ascii_retry_after_is_kept() -> None:
    decisions = await _decide_both(_mock(429, {"Retry-After": "7"}, b"{}"))
    assert [d.retry_after for d in decisions] == [7, 7]


@pytest.mark.parametrize("value", ["²", "¹⁰", "٣", "x"])
async def test_odd_cache_for_is_absent(value: str) -> None:
    calls: list[int] = []
    transport = _mock(200, {"Ory-Session-Cache-For": value}, _session_body(), calls)
    blocking, awaitable = _both(transport, cache_ttl=30)
    credentials = Credentials(cookie="abc")
    for _ in range(2):
        assert blocking.check(credentials, "aal2", APP).allowed
        assert (await awaitable.check(credentials, "aal2", APP)).allowed
    # Treated as absent: each client cached the answer for cache_ttl, one call each.
    assert len(calls) == 2


async def test_ascii_cache_for_zero_is_kept() -> None:
    calls: list[int] = []
    transport = _mock(200, {"Ory-Session-Cache-For": "0"}, _session_body(), calls)
    blocking, awaitable = _both(transport, cache_ttl=30)
    credentials = Credentials(cookie="abc")
    for _ in range(2):
        assert blocking.check(credentials, "aal2", APP).allowed
        assert (await awaitable.check(credentials, "aal2", APP)).allowed
    assert len(calls) == 4


@pytest.mark.parametrize("depth", [5_000, 100_000])
async def test_deeply_nested_body_is_unavailable(depth: int) -> None:
    body = b"[" * depth + b"]" * depth
    for status in (200, 403):
        decisions = await _decide_both(_mock(status, {}, body))
        assert [d.outcome for d in decisions] == [Outcome.UNAVAILABLE] * 2
        assert all(d.retry_after for d in decisions)


# ------------------------------------------------------- the whole exchange (item 6)


class Dripper:
    """A loopback HTTP server that sends *fast* at once, then *slow* one byte at a time."""

    def __init__(self, fast: bytes, slow: bytes, pause: float = 0.05) -> None:
        self.fast, self.slow, self.pause = fast, slow, pause
        self.sock = reserve_port()
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.stop = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    @property
    def url(self) -> str:
        host, port = self.sock.getsockname()
        return f"http://{host}:{port}"

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            threading.Thread(target=self._drip, args=(conn,), daemon=True).start()

    def _drip(self, conn: socket.socket) -> None:
        with conn:
            try:
                conn.recv(65536)
                conn.sendall(self.fast)
                for byte in self.slow:
                    if self.stop.is_set():
                        return
                    conn.sendall(bytes([byte]))
                    time.sleep(self.pause)
            except OSError:
                return

    def close(self) -> None:
        self.stop.set()
        self.sock.close()


@pytest.fixture(params=["body", "headers"])
def dripper(request: pytest.FixtureRequest) -> Iterator[Dripper]:
    body = _session_body()
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
    head %= len(body)
    # "headers": even the status line and headers arrive a byte at a time.
    server = Dripper(head, body) if request.param == "body" else Dripper(b"", head + body)
    yield server
    server.close()


def _timed(call: Callable[[], Any]) -> tuple[Any, float]:
    started = time.monotonic()
    result = call()
    return result, time.monotonic() - started


def test_timeout_bounds_the_exchange_sync(dripper: Dripper) -> None:
    # Each byte comes well within the read timeout; the whole answer would take ~20 s.
    client = KratosClient(KratosConfig(public_url=dripper.url, timeout=0.5))
    decision, took = _timed(lambda: client.check(Credentials(cookie="abc"), "aal2", APP))
    assert decision.outcome is Outcome.UNAVAILABLE
    assert took < 3  # 0.5 s and scheduling slack; before, it took the whole drip


async def test_timeout_bounds_the_exchange_async(dripper: Dripper) -> None:
    client = AsyncKratosClient(KratosConfig(public_url=dripper.url, timeout=0.5))
    started = time.monotonic()
    decision = await client.check(Credentials(cookie="abc"), "aal2", APP)
    took = time.monotonic() - started
    await client.aclose()
    assert decision.outcome is Outcome.UNAVAILABLE
    assert took < 3


def _exchange_threads() -> int:
    return sum(t.name == "kratos-aal-exchange" for t in threading.enumerate())


def _settled(count: Callable[[], int], at_most: int, limit: float = 15.0) -> int:
    """Poll *count* until it is *at_most* or *limit* seconds pass; return the last count."""
    deadline = time.monotonic() + limit
    seen = count()
    while seen > at_most and time.monotonic() < deadline:
        time.sleep(0.05)
        seen = count()
    return seen


def test_idle_exchange_threads_retire_after_a_while() -> None:
    exchanges = kratos_aal._exchange._Exchanges(keep=8, linger=0.05)
    # Thread objects, not idents: a new thread may reuse the ident of one that ended.
    before = set(threading.enumerate())
    done = [threading.Event() for _ in range(5)]
    gate = threading.Event()

    def job(event: threading.Event) -> Callable[[], None]:
        def run() -> None:
            gate.wait(10)
            event.set()

        return run

    for event in done:
        exchanges.submit(job(event))
    gate.set()
    assert all(event.wait(10) for event in done)

    def ours() -> int:
        return sum(t not in before for t in threading.enumerate())

    assert _settled(ours, 0) == 0  # five at once, none left once idle for a while
    assert _settled(lambda: exchanges._idle, 0) == 0
    again = threading.Event()
    exchanges.submit(again.set)  # and a new one starts when needed
    assert again.wait(10)


def test_a_dripped_answer_leaves_no_thread_reading(dripper: Dripper) -> None:
    # The drip lasts a minute or more, far past the request's 503: the exchange thread
    # must stop reading with its request, not when Kratos is done dripping.
    client = KratosClient(KratosConfig(public_url=dripper.url, timeout=0.3, cache_ttl=0))
    workers = 10

    def batch(requests: int) -> list[Outcome]:
        outcomes: list[Outcome] = []

        def work(index: int) -> None:
            for n in range(requests):
                credentials = Credentials(cookie=f"drip-{index}-{n}")
                outcomes.append(client.check(credentials, "aal2", APP).outcome)

        threads = [threading.Thread(target=work, args=(i,)) for i in range(workers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        return outcomes

    assert set(batch(1)) == {Outcome.UNAVAILABLE}  # warm-up: the exchange threads exist
    start = _settled(_exchange_threads, workers)
    assert batch(10) == [Outcome.UNAVAILABLE] * 100
    assert _settled(_exchange_threads, start) <= start
    client.close()


# ------------------------------------------------------ max_age with methods (item 7)


def _session(methods: list[tuple[str, str, float]], now: datetime) -> Session:
    return Session.from_json(
        {
            "id": "s1",
            "active": True,
            "authenticator_assurance_level": "aal2",
            "expires_at": (now + timedelta(hours=1)).isoformat(),
            "authentication_methods": [
                {
                    "method": m,
                    "aal": aal,
                    "completed_at": (now - timedelta(seconds=ago)).isoformat(),
                }
                for m, aal, ago in methods
            ],
            "identity": {"id": "i1", "traits": {}},
        }
    )


@pytest.mark.parametrize(
    ("webauthn_age", "totp_age", "expected"),
    [
        pytest.param(7200, 60, Outcome.REAUTHENTICATE, id="old-key-fresh-totp"),
        pytest.param(299, 60, Outcome.ALLOW, id="key-just-inside"),
        pytest.param(301, 1, Outcome.REAUTHENTICATE, id="key-just-outside"),
        pytest.param(10, 7200, Outcome.ALLOW, id="fresh-key-old-totp"),
    ],
)
def test_max_age_runs_from_a_listed_method(
    webauthn_age: float, totp_age: float, expected: Outcome
) -> None:
    now = datetime.now(timezone.utc)
    session = _session(
        [
            ("password", "aal1", 7300),
            ("webauthn", "aal2", webauthn_age),
            ("totp", "aal2", totp_age),
        ],
        now,
    )
    requirement = Requirement("aal2", max_age=300, methods={"webauthn"})
    config = KratosConfig(public_url="http://kratos:4433")
    assert decide(session, requirement, now=now, return_to=APP, config=config).outcome is expected


def test_max_age_without_methods_takes_any_second_factor() -> None:
    now = datetime.now(timezone.utc)
    session = _session([("webauthn", "aal2", 7200), ("totp", "aal2", 60)], now)
    config = KratosConfig(public_url="http://kratos:4433")
    decision = decide(
        session, Requirement("aal2", max_age=300), now=now, return_to=APP, config=config
    )
    assert decision.outcome is Outcome.ALLOW


# ------------------------------------------------------- duplicate cookies (item 8)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        pytest.param(
            "ory_kratos_session=bad\\value; ory_kratos_session=GOOD", "GOOD", id="backslash"
        ),
        pytest.param('ory_kratos_session="abc; ory_kratos_session=GOOD', "GOOD", id="open-quote"),
        pytest.param("ory_kratos_session=a b; ory_kratos_session=GOOD", "GOOD", id="space"),
        pytest.param('ory_kratos_session=x"y; ory_kratos_session=GOOD', "GOOD", id="inner-quote"),
        pytest.param(
            "ory_kratos_session=FIRST; ory_kratos_session=SECOND", "FIRST", id="first-wins"
        ),
        pytest.param('ory_kratos_session="QUOTED"; ory_kratos_session=GOOD', "QUOTED", id="quoted"),
        pytest.param("ory_kratos_session=bad\\value", None, id="only-bad"),
    ],
)
def test_duplicate_cookie_names_read_as_go_does(header: str, expected: str | None) -> None:
    assert Credentials.from_headers({"cookie": header}).cookie == expected


def test_duplicate_cookie_across_cookie_headers() -> None:
    headers = [(b"cookie", b"ory_kratos_session=bad\\value"), (b"cookie", b"ory_kratos_session=OK")]
    assert Credentials.from_headers(headers).cookie == "OK"


# ----------------------------------------------- an injected client's cookie jar (item 9)


def _extended(fake: FakeKratos) -> Credentials:
    # Whoami after an extension re-issues the session cookie (Set-Cookie).
    session = fake.session("aal2")
    fake.extend(session, 3600)
    return Credentials(cookie=session.cookie)


def _kratos_cookies(jar: httpx.Cookies, fake: FakeKratos) -> list[str]:
    return [c.name for c in jar.jar if c.name.startswith(("ory_", "csrf"))]


def test_injected_client_keeps_no_kratos_cookie_sync(fake: FakeKratos) -> None:
    http = httpx.Client(transport=fake.transport(), cookies={"app_pref": "dark"})
    client = KratosClient(fake.config(), http_client=http)
    assert client.check(_extended(fake), "aal2", APP).allowed
    assert _kratos_cookies(http.cookies, fake) == []
    assert http.cookies.get("app_pref") == "dark"  # the user's own cookie stays


async def test_injected_client_keeps_no_kratos_cookie_async(fake: FakeKratos) -> None:
    http = httpx.AsyncClient(transport=fake.transport(), cookies={"app_pref": "dark"})
    client = AsyncKratosClient(fake.config(), http_client=http)
    assert (await client.check(_extended(fake), "aal2", APP)).allowed
    assert _kratos_cookies(http.cookies, fake) == []
    assert http.cookies.get("app_pref") == "dark"
    await http.aclose()


def test_fake_clients_keep_no_kratos_cookie(fake: FakeKratos) -> None:
    with fake.client() as client:
        assert client.check(_extended(fake), "aal2", APP).allowed
        assert _kratos_cookies(client._http.cookies, fake) == []


def test_the_whoami_answer_did_set_a_cookie(fake: FakeKratos) -> None:
    # The tests above mean something only if Kratos's answer carries a Set-Cookie.
    credentials = _extended(fake)
    with httpx.Client(transport=fake.transport()) as http:
        response = http.get(
            f"{fake.public_url}{WHOAMI}",
            headers={"Cookie": f"{fake.cookie_name}={credentials.cookie}"},
        )
        assert response.status_code == 200
        assert "set-cookie" in response.headers
        assert _kratos_cookies(http.cookies, fake) != []


# ------------------------------------------------------------ monotonic cache (item 10)


@pytest.fixture
def stepped_clock(monkeypatch: pytest.MonkeyPatch) -> SimpleNamespace:
    """The client's view of time: a wall clock and a monotonic clock tests move apart."""
    clock = SimpleNamespace(wall=time.time(), steady=1000.0)
    fake_time = SimpleNamespace(time=lambda: clock.wall, monotonic=lambda: clock.steady)
    monkeypatch.setattr(kratos_aal._base, "time", fake_time)
    return clock


def test_cache_lifetime_is_monotonic_sync(fake: FakeKratos, stepped_clock: SimpleNamespace) -> None:
    session = fake.session("aal2")
    credentials = Credentials(cookie=session.cookie)
    client = KratosClient(
        fake.config(cache_ttl=30), http_client=httpx.Client(transport=fake.transport())
    )
    assert client.check(credentials, "aal2", APP).allowed
    fake.revoke(session)
    stepped_clock.wall -= 3600  # the system clock steps back an hour
    stepped_clock.steady += 29
    assert client.check(credentials, "aal2", APP).allowed  # still cached: 29 s < 30 s
    stepped_clock.steady += 2
    assert client.check(credentials, "aal2", APP).outcome is Outcome.LOGIN
    assert fake.calls[WHOAMI] == 2


async def test_cache_lifetime_is_monotonic_async(
    fake: FakeKratos, stepped_clock: SimpleNamespace
) -> None:
    session = fake.session("aal2")
    credentials = Credentials(cookie=session.cookie)
    http = httpx.AsyncClient(transport=fake.transport())
    client = AsyncKratosClient(fake.config(cache_ttl=30), http_client=http)
    assert (await client.check(credentials, "aal2", APP)).allowed
    fake.revoke(session)
    stepped_clock.wall -= 3600
    stepped_clock.steady += 31
    assert (await client.check(credentials, "aal2", APP)).outcome is Outcome.LOGIN
    await http.aclose()


def test_expiry_still_compares_wall_time(fake: FakeKratos, stepped_clock: SimpleNamespace) -> None:
    # A session Kratos says expires in 10 s is cached for 10 s of wall time at most.
    session = fake.session("aal2", expires_in=10)
    credentials = Credentials(cookie=session.cookie)
    client = KratosClient(
        fake.config(cache_ttl=300), http_client=httpx.Client(transport=fake.transport())
    )
    assert client.check(credentials, "aal2", APP).allowed
    stepped_clock.wall += 11  # past expires_at on the wall clock, steady clock unmoved
    client.check(credentials, "aal2", APP)
    assert fake.calls[WHOAMI] == 2  # not allowed from the cache: Kratos was asked again


# ------------------------------------------- sign-out forgets the learned second factor


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_invalidate_forgets_what_was_learned_of_second_factors(
    fake: FakeKratos, mode: str
) -> None:
    ada = fake.create_identity("ada@example.com", totp=True)
    strong = Credentials(cookie=fake.session("aal2", identity=ada).cookie)
    weak = Credentials(cookie=fake.session("aal1", identity=ada, totp=False).cookie)

    if mode == "sync":
        blocking: KratosClient = fake.client()

        async def check(credentials: Credentials) -> Outcome:
            return blocking.check(credentials, "aal2", APP).outcome

        invalidate = blocking.invalidate
    else:
        awaitable: AsyncKratosClient = fake.async_client()

        async def check(credentials: Credentials) -> Outcome:
            return (await awaitable.check(credentials, "aal2", APP)).outcome

        invalidate = awaitable.invalidate

    assert await check(strong) is Outcome.ALLOW  # an aal2 session: she has a second factor
    ada.totp_secret = None  # she removes her authenticator app
    assert await check(weak) is Outcome.STEP_UP  # still what was learned a moment ago
    invalidate(strong)  # she signs out
    assert await check(weak) is Outcome.ENROLL

# No `from __future__ import annotations`: FastAPI reads the local routes' annotations.
"""``make bench``: SPEC §8's figures, each a ratio or a count measured side by side in one run.

Timings are medians over interleaved rounds (A, B, A, B, ...), so that a noisy, shared
machine slows both sides alike. Run: ``python -m benchmarks [--quick]``.
"""

import argparse
import asyncio
import base64
import gc
import io
import itertools
import json
import statistics
import sys
import threading
import time
import tracemalloc
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpcore
import httpx

from kratos_aal import AsyncKratosClient, Credentials, KratosClient, KratosConfig
from kratos_aal._kratos_api import parse_whoami
from kratos_aal.testing import FakeKratos, reserve_port, serve

from ._asgi import call, scope_for
from ._browser import BROWSER_HEADERS, browser_cookie
from ._fake_server import fake_process
from ._instances import several_instances

ROWS: list[tuple[str, str, str, str]] = []


def row(figure: str, value: str, target: str, verdict: str) -> None:
    ROWS.append((figure, value, target, verdict))
    print(f"  {figure}: {value} (target {target}) {verdict}", file=sys.stderr, flush=True)


def interleaved(sides: dict[str, Callable[[], float]], rounds: int) -> dict[str, float]:
    """Run each side once per round, alternating; return each side's median seconds.

    Besides each side's median, ``"<side> added"`` is the median over rounds of that
    side minus the first side in the same round: paired, so a slow spell of the shared
    machine, which slows a whole round, cancels out.
    """
    samples: dict[str, list[float]] = {name: [] for name in sides}
    for _ in range(rounds):
        for name, measure in sides.items():
            samples[name].append(measure())
    medians = {name: statistics.median(values) for name, values in samples.items()}
    first = samples[next(iter(sides))]
    for name, values in samples.items():
        medians[f"{name} added"] = statistics.median(
            v - b for v, b in zip(values, first, strict=True)
        )
    return medians


def fake_with_session() -> tuple[FakeKratos, Any]:
    fake = FakeKratos(whoami_required_aal="aal1")
    return fake, fake.session("aal2")


def async_client(fake: FakeKratos) -> AsyncKratosClient:
    # The production timer (time.time), not the fake's clock.
    return AsyncKratosClient(
        fake.config(), http_client=httpx.AsyncClient(transport=fake.transport())
    )


def sync_client(fake: FakeKratos) -> KratosClient:
    return KratosClient(fake.config(), http_client=httpx.Client(transport=fake.transport()))


# ----------------------------------------------------------------------------- the hit path


def ratio_row(figure: str, times: dict[str, float], peer: str | None = None) -> None:
    """Report what kratos-aal adds to the bare side against what the ideal adds."""
    bare = times["bare"]
    ours, ideal = times["ours added"] * 1e6, times["ideal added"] * 1e6
    ratio = ours / ideal if ideal > 0 else float("inf")
    value = f"{ratio:.2f}x (+{ours:.1f} µs vs ideal +{ideal:.1f} µs; bare {bare * 1e6:.1f} µs)"
    if peer is not None:
        value += f"; {peer} +{times['peer added'] * 1e6:.1f} µs"
    row(figure, value, "≤ 2.0x (stretch 1.5x)", "met" if ratio <= 2.0 else "missed")


def raw_asgi(
    loop: asyncio.AbstractEventLoop, app: Any, scope: dict[str, Any], requests: int
) -> Callable[[], float]:
    """Return a measure: seconds per request of *app*, called straight as ASGI."""

    async def many() -> float:
        start = time.perf_counter()
        for _ in range(requests):
            await call(app, scope)
        return (time.perf_counter() - start) / requests

    return lambda: loop.run_until_complete(many())


def _ideal_store(session: Any, decision: Any) -> Any:
    from ._ideal import IdealStore

    store = IdealStore()
    store.add(session.cookie, decision.session)
    return store


def starlette_overhead(requests: int, rounds: int) -> None:
    from starlette.applications import Starlette
    from starlette.authentication import AuthCredentials, AuthenticationBackend, SimpleUser
    from starlette.middleware import Middleware
    from starlette.middleware.authentication import AuthenticationMiddleware
    from starlette.middleware.sessions import SessionMiddleware
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    from kratos_aal.integrations.starlette import KratosAALMiddleware

    from ._ideal import IdealASGI

    async def endpoint(request: Any) -> PlainTextResponse:
        return PlainTextResponse("ok")

    class SessionUser(AuthenticationBackend):
        async def authenticate(self, conn: Any) -> Any:
            user = conn.session.get("user")
            return (AuthCredentials(["authenticated"]), SimpleUser(user)) if user else None

    fake, session = fake_with_session()
    client = async_client(fake)
    routes = [Route("/billing", endpoint)]
    bare = Starlette(routes=routes)
    ours = Starlette(
        routes=routes,
        middleware=[Middleware(KratosAALMiddleware, client=client, rules={"/billing": "aal2"})],
    )
    loop = asyncio.new_event_loop()
    decision = loop.run_until_complete(client.check(Credentials(cookie=session.cookie)))
    ideal = IdealASGI(bare, _ideal_store(session, decision))
    peer = Starlette(
        routes=routes,
        middleware=[
            Middleware(SessionMiddleware, secret_key="bench"),
            Middleware(AuthenticationMiddleware, backend=SessionUser()),
        ],
    )
    signed = _starlette_session_cookie()
    headers = [(n.encode(), v.encode()) for n, v in BROWSER_HEADERS]
    scope = scope_for("/billing", [*headers, (b"cookie", browser_cookie(session).encode())])
    peer_scope = scope_for("/billing", [*headers, (b"cookie", signed.encode())])
    for app, what in ((ours, scope), (ideal, scope), (peer, peer_scope)):
        assert loop.run_until_complete(call(app, what)) == 200  # warm every cache
    times = interleaved(
        {
            "bare": raw_asgi(loop, bare, scope, requests),
            "ours": raw_asgi(loop, ours, scope, requests),
            "ideal": raw_asgi(loop, ideal, scope, requests),
            "peer": raw_asgi(loop, peer, peer_scope, requests),
        },
        rounds,
    )
    ratio_row(
        "Starlette KratosAALMiddleware, cache hit, added vs ideal",
        times,
        "SessionMiddleware + AuthenticationMiddleware",
    )
    wsgi_overhead(fake, session, decision, requests, rounds)
    loop.close()


def _starlette_session_cookie() -> str:
    """Return a signed Starlette session cookie holding a user, as SessionMiddleware sets it."""
    from itsdangerous import TimestampSigner

    data = base64.b64encode(json.dumps({"user": "alice"}).encode())
    return "session=" + TimestampSigner("bench").sign(data).decode()


def wsgi_overhead(
    fake: FakeKratos, session: Any, decision: Any, requests: int, rounds: int
) -> None:
    from kratos_aal.integrations.wsgi import KratosAALWSGIMiddleware

    from ._ideal import IdealWSGI

    def bare(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    ours = KratosAALWSGIMiddleware(bare, client=sync_client(fake), rules={"/billing": "aal2"})
    ideal = IdealWSGI(bare, _ideal_store(session, decision))
    environ = {
        "REQUEST_METHOD": "GET",
        "SCRIPT_NAME": "",
        "PATH_INFO": "/billing",
        "QUERY_STRING": "",
        "SERVER_NAME": "testserver",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.url_scheme": "http",
        "HTTP_HOST": "testserver",
        "HTTP_COOKIE": browser_cookie(session),
        **{"HTTP_" + n.upper().replace("-", "_"): v for n, v in BROWSER_HEADERS},
    }

    def start_response(status: str, headers: list[tuple[str, str]], *exc: Any) -> None:
        assert status.startswith("200"), status

    def measure(app: Any) -> Callable[[], float]:
        def many() -> float:
            start = time.perf_counter()
            for _ in range(requests):
                app(dict(environ), start_response)
            return (time.perf_counter() - start) / requests

        return many

    times = interleaved(
        {"bare": measure(bare), "ours": measure(ours), "ideal": measure(ideal)}, rounds
    )
    ratio_row("WSGI KratosAALWSGIMiddleware, cache hit, added vs ideal", times)


def fastapi_overhead(requests: int, rounds: int) -> None:
    from typing import Annotated

    from fastapi import Depends, FastAPI

    from kratos_aal import Session
    from kratos_aal.integrations.fastapi import KratosAALMiddleware, require_aal2

    fake, session = fake_with_session()
    bare, empty, ours = FastAPI(), FastAPI(), FastAPI()
    for app in (empty, ours):
        app.add_middleware(KratosAALMiddleware, client=async_client(fake))

    async def nothing() -> None:
        return None

    @bare.get("/billing")
    async def bare_billing() -> dict[str, str]:
        return {"ok": "yes"}

    @empty.get("/billing")
    async def empty_billing(_: Annotated[None, Depends(nothing)]) -> dict[str, str]:
        return {"ok": "yes"}

    @ours.get("/billing")
    async def ours_billing(session: Annotated[Session, Depends(require_aal2)]) -> dict[str, str]:
        return {"ok": "yes"}

    headers = [(n.encode(), v.encode()) for n, v in BROWSER_HEADERS]
    scope = scope_for("/billing", [*headers, (b"cookie", browser_cookie(session).encode())])
    loop = asyncio.new_event_loop()
    assert loop.run_until_complete(call(ours, scope)) == 200
    times = interleaved(
        {
            "bare": raw_asgi(loop, bare, scope, requests),
            "empty": raw_asgi(loop, empty, scope, requests),
            "ours": raw_asgi(loop, ours, scope, requests),
        },
        rounds,
    )
    base = times["bare"]
    ours_added, empty_added = times["ours added"] * 1e6, times["empty added"] * 1e6
    ratio = ours_added / empty_added
    row(
        "FastAPI Depends(require_aal2), cache hit, added vs an empty Depends",
        f"{ratio:.2f}x (+{ours_added:.1f} µs vs +{empty_added:.1f} µs; bare {base * 1e6:.1f} µs)",
        "≤ 2.0x",
        "met" if ratio <= 2.0 else "missed",
    )
    loop.close()


def configure_django() -> None:
    import django
    from django.conf import settings

    if not settings.configured:
        settings.configure(
            DEBUG=False,
            SECRET_KEY="bench",
            ALLOWED_HOSTS=["testserver"],
            ROOT_URLCONF="benchmarks._django_urls",
            # contrib.auth: DRF's anonymous user and the peer row; no middleware uses it.
            INSTALLED_APPS=[
                "django.contrib.contenttypes",
                "django.contrib.auth",
                "django.contrib.sessions",
                "kratos_aal.integrations.django",
            ],
            MIDDLEWARE=[],
            SESSION_ENGINE="django.contrib.sessions.backends.signed_cookies",
            AUTHENTICATION_BACKENDS=["benchmarks._django_urls.NoDatabaseBackend"],
            KRATOS_AAL={"PUBLIC_URL": "http://127.0.0.1:4433"},
        )
        django.setup()


def django_overhead(requests: int, rounds: int) -> None:
    configure_django()
    from django.contrib.auth.decorators import login_required
    from django.contrib.auth.middleware import AuthenticationMiddleware
    from django.contrib.sessions.middleware import SessionMiddleware
    from django.test import RequestFactory

    from kratos_aal.integrations.django import require_aal2
    from kratos_aal.integrations.django.conf import override_clients

    from . import _django_urls
    from ._ideal import ideal_django

    fake, session = fake_with_session()
    factory = RequestFactory()
    environ = {"HTTP_" + n.upper().replace("-", "_"): v for n, v in BROWSER_HEADERS}
    ours, bare = require_aal2(_plain_view), _plain_view
    peer_chain = SessionMiddleware(AuthenticationMiddleware(login_required(_plain_view)))
    signed = _django_urls.signed_session_cookie()

    with override_clients(sync_client(fake), async_client(fake)):
        request = factory.get("/billing", HTTP_COOKIE=browser_cookie(session), **environ)
        decision = conf_client().check(Credentials(cookie=session.cookie))
        ideal = ideal_django(_plain_view, _ideal_store(session, decision))
        for view in (ours, ideal):
            assert view(request).status_code == 200

        def measure(target: Callable[[Any], Any]) -> Callable[[], float]:
            def many() -> float:
                start = time.perf_counter()
                for _ in range(requests):
                    target(request)
                return (time.perf_counter() - start) / requests

            return many

        def peer() -> float:
            # Sessions and users attach lazily to a fresh request: one per call, and the
            # cost of making it is taken off (measured apart, below).
            made = [factory.get("/billing", HTTP_COOKIE=signed, **environ) for _ in range(requests)]
            start = time.perf_counter()
            for one in made:
                assert peer_chain(one).status_code == 200
            return (time.perf_counter() - start) / requests

        times = interleaved(
            {"bare": measure(bare), "ours": measure(ours), "ideal": measure(ideal), "peer": peer},
            rounds,
        )
    ratio_row(
        "Django @require_aal2, cache hit, added vs ideal (view called directly)",
        times,
        "signed-cookie sessions + AuthenticationMiddleware + @login_required",
    )


def conf_client() -> KratosClient:
    from kratos_aal.integrations.django.conf import clients

    return clients()[0]


def _plain_view(request: Any) -> Any:
    from django.http import HttpResponse

    return HttpResponse("ok")


def drf_overhead(requests: int, rounds: int) -> None:
    configure_django()
    from django.test import RequestFactory
    from rest_framework.permissions import AllowAny
    from rest_framework.request import Request
    from rest_framework.response import Response
    from rest_framework.views import APIView

    from kratos_aal.integrations.django.conf import override_clients
    from kratos_aal.integrations.drf import IsAAL2, KratosAuthentication

    from ._ideal import ideal_drf_authentication, ideal_drf_permission

    fake, session = fake_with_session()

    class Bare(APIView):  # type: ignore[misc]
        authentication_classes: list[Any] = []
        permission_classes = [AllowAny]

        def get(self, request: Any) -> Any:
            return Response({"ok": True})

    class Ours(Bare):
        permission_classes = [IsAAL2]

    class WithAuthentication(Bare):
        authentication_classes = [KratosAuthentication]
        permission_classes = [IsAAL2]

    factory = RequestFactory()
    environ = {"HTTP_" + n.upper().replace("-", "_"): v for n, v in BROWSER_HEADERS}

    def fresh() -> Any:
        return factory.get("/billing", HTTP_COOKIE=browser_cookie(session), **environ)

    def measure(view: Callable[[Any], Any]) -> Callable[[], float]:
        def many() -> float:
            made = [fresh() for _ in range(requests)]
            start = time.perf_counter()
            for one in made:
                view(one)
            return (time.perf_counter() - start) / requests

        return many

    def alone(permission: type, authentication: type | None = None) -> Callable[[], float]:
        """What DRF's view runs of *authentication* and *permission*, alone.

        As ``APIView.initial`` does it (``request.user``, then a new permission's
        ``has_permission``) on fresh requests, without the rest of a view (about 80 µs on
        the 2-core VM), whose run-to-run spread is larger than what the permission adds.
        """
        classes = () if authentication is None else (authentication,)
        api_view = APIView()

        def many() -> float:
            made = [
                Request(fresh(), authenticators=[c() for c in classes]) for _ in range(requests)
            ]
            start = time.perf_counter()
            for one in made:
                one.user  # noqa: B018  # authenticates, as perform_authentication does
                if not permission().has_permission(one, api_view):
                    raise AssertionError(f"{permission.__name__} refused a cache hit")
            return (time.perf_counter() - start) / requests

        return many

    with override_clients(sync_client(fake), async_client(fake)):
        decision = conf_client().check(Credentials(cookie=session.cookie))

        store = _ideal_store(session, decision)
        authentication, permission = ideal_drf_authentication(store)

        class Ideal(Bare):
            permission_classes = [ideal_drf_permission(store)]

        class IdealWithAuthentication(Bare):
            authentication_classes = [authentication]
            permission_classes = [permission]

        views = {
            "bare": Bare.as_view(),
            "ours": Ours.as_view(),
            "ideal": Ideal.as_view(),
            "auth": WithAuthentication.as_view(),
            "ideal auth": IdealWithAuthentication.as_view(),
        }
        for view in views.values():
            assert view(fresh()).status_code == 200
        times = interleaved({name: measure(view) for name, view in views.items()}, rounds)
        alone_times = interleaved(
            {
                "bare": alone(AllowAny),
                "ours": alone(IsAAL2),
                "ideal": alone(ideal_drf_permission(store)),
                "auth": alone(IsAAL2, KratosAuthentication),
                "ideal auth": alone(permission, authentication),
            },
            rounds,
        )
    ratio_row("DRF IsAAL2 permission, cache hit, added vs ideal", times)
    ratio_row(
        "DRF KratosAuthentication + IsAAL2, cache hit, added vs ideal pair",
        {**times, "ours added": times["auth added"], "ideal added": times["ideal auth added"]},
    )
    ratio_row("DRF IsAAL2 alone (no view: DRF's Request), added vs ideal", alone_times)
    ratio_row(
        "DRF KratosAuthentication + IsAAL2 alone, added vs ideal pair",
        {
            **alone_times,
            "ours added": alone_times["auth added"],
            "ideal added": alone_times["ideal auth added"],
        },
    )


def flask_overhead(requests: int, rounds: int) -> None:
    from flask import Flask

    from kratos_aal.integrations.flask import KratosAAL, require_aal2

    from ._ideal import ideal_flask

    fake, session = fake_with_session()
    app = Flask(__name__)
    app.config["KRATOS_AAL"] = {"PUBLIC_URL": fake.public_url}
    client = sync_client(fake)
    KratosAAL(app, client=client)
    decision = client.check(Credentials(cookie=session.cookie))
    store = _ideal_store(session, decision)

    def view() -> str:
        return "ok"

    app.add_url_rule("/bare", "bare", view)
    app.add_url_rule("/ours", "ours", require_aal2(view))
    app.add_url_rule("/ideal", "ideal", ideal_flask(view, store))
    environ = {"HTTP_" + n.upper().replace("-", "_"): v for n, v in BROWSER_HEADERS}
    environ["HTTP_COOKIE"] = browser_cookie(session)
    environ["HTTP_HOST"] = "testserver"

    def measure(path: str) -> Callable[[], float]:
        base = {
            "REQUEST_METHOD": "GET",
            "SCRIPT_NAME": "",
            "PATH_INFO": path,
            "QUERY_STRING": "",
            "SERVER_NAME": "testserver",
            "SERVER_PORT": "80",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "wsgi.url_scheme": "http",
            "wsgi.input": io.BytesIO(),
            "wsgi.errors": sys.stderr,
            **environ,
        }

        def start_response(status: str, headers: Any, *exc: Any) -> Any:
            assert status.startswith("200"), status

        def many() -> float:
            start = time.perf_counter()
            for _ in range(requests):
                b"".join(app(dict(base), start_response))
            return (time.perf_counter() - start) / requests

        return many

    for path in ("/bare", "/ours", "/ideal"):
        measure(path)()
    times = interleaved(
        {"bare": measure("/bare"), "ours": measure("/ours"), "ideal": measure("/ideal")}, rounds
    )
    ratio_row("Flask @require_aal2, cache hit, added vs ideal (WSGI call)", times)


# ----------------------------------------------------------------------------- coalescing


def coalescing() -> None:
    fake, session = fake_with_session()
    fake.latency = 0.05
    credentials = Credentials(cookie=session.cookie)

    async def burst() -> None:
        client = async_client(fake)
        await asyncio.gather(*(client.check(credentials, "aal2") for _ in range(1000)))
        await client.aclose()

    asyncio.run(burst())
    calls = fake.calls["/sessions/whoami"]
    row(
        "whoami calls, 1,000 concurrent cold requests (asyncio)",
        str(calls),
        "1",
        "met" if calls == 1 else "missed",
    )

    fake, session = fake_with_session()
    fake.latency = 0.05
    credentials = Credentials(cookie=session.cookie)
    client = sync_client(fake)
    barrier = threading.Barrier(100)

    def one(index: int) -> None:
        if index < 100:
            barrier.wait()
        client.check(credentials, "aal2")

    with ThreadPoolExecutor(max_workers=100) as pool:
        list(pool.map(one, range(1000)))
    calls = fake.calls["/sessions/whoami"]
    row(
        "whoami calls, 1,000 concurrent cold requests (threads)",
        str(calls),
        "1",
        "met" if calls == 1 else "missed",
    )

    fake = FakeKratos(whoami_required_aal="aal1")
    sessions = [Credentials(cookie=fake.session("aal2").cookie) for _ in range(100)]
    client = sync_client(fake)
    for index in range(10_000):
        client.check(sessions[index % 100], "aal2")
    calls = fake.calls["/sessions/whoami"]
    row(
        "whoami calls, 10,000 requests over 100 sessions",
        str(calls),
        "100",
        "met" if calls == 100 else "missed",
    )


# ----------------------------------------------------------------------------- vs. the SDK


def against_sdk(seconds: float) -> None:
    """Throughput of a check per request: kratos-aal (cached) vs. ory-kratos-client's to_session."""
    from ory_kratos_client.api.frontend_api import FrontendApi
    from ory_kratos_client.api_client import ApiClient
    from ory_kratos_client.configuration import Configuration

    sock = reserve_port()
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    fake = FakeKratos(public_url=url, whoami_required_aal="aal1")
    fake.latency = 0.001  # Kratos 1 ms away
    cookies = [fake.session("aal2").cookie for _ in range(100)]
    with serve(fake, sock=sock):
        sdk = FrontendApi(ApiClient(Configuration(host=url)))
        ours = KratosClient(KratosConfig(public_url=url))

        def run(check: Callable[[str], None]) -> float:
            done, start = 0, time.perf_counter()
            while time.perf_counter() - start < seconds:
                check(cookies[done % 100])
                done += 1
            return done / (time.perf_counter() - start)

        def with_sdk(cookie: str) -> None:
            session = sdk.to_session(cookie=f"{fake.cookie_name}={cookie}")
            assert session.authenticator_assurance_level is not None

        def with_ours(cookie: str) -> None:
            assert ours.check(Credentials(cookie=cookie), "aal2").allowed

        rates = {"sdk": [], "ours": []}  # type: dict[str, list[float]]
        for _ in range(3):
            rates["sdk"].append(run(with_sdk))
            rates["ours"].append(run(with_ours))
        ours.close()
    sdk_rate, our_rate = statistics.median(rates["sdk"]), statistics.median(rates["ours"])
    ratio = our_rate / sdk_rate
    row(
        "throughput vs. ory-kratos-client to_session per request (Kratos +1 ms, 100 sessions)",
        f"{ratio:.0f}x ({sdk_rate:,.0f} → {our_rate:,.0f} checks/s)",
        "≥ 20x",
        "met" if ratio >= 20 else "missed",
    )


def cache_miss_latency(rounds: int) -> None:
    """What a cache miss costs beyond Kratos's own answer, over real loopback HTTP.

    FakeKratos answers from a process of its own, so this process's CPU is the client's:
    kratos-aal's miss, a bare httpx GET, and httpcore's pool (httpx's transport) used
    directly, the floor of a pooled HTTP/1.1 GET.
    """
    with (
        fake_process(rounds * 60) as fake,
        httpx.Client() as raw,
        httpcore.ConnectionPool() as pool,
    ):
        url, cookies = fake["url"], fake["cookies"]
        ours = KratosClient(KratosConfig(public_url=url, cache_ttl=0))
        position = itertools.count()

        def header() -> str:
            return f"{fake['cookie_name']}={cookies[next(position) % len(cookies)]}"

        def core() -> float:
            headers = [("Cookie", header()), ("Accept", "application/json")]
            start = time.perf_counter()
            reply = pool.request("GET", f"{url}/sessions/whoami", headers=headers)
            json.loads(reply.content)
            return time.perf_counter() - start

        def direct() -> float:
            headers = {"Cookie": header()}
            start = time.perf_counter()
            raw.get(f"{url}/sessions/whoami", headers=headers).json()
            return time.perf_counter() - start

        def through() -> float:
            credentials = Credentials(cookie=header().split("=", 1)[1])
            start = time.perf_counter()
            assert ours.check(credentials, "aal2").allowed
            return time.perf_counter() - start

        times = interleaved({"direct": direct, "through": through}, rounds * 10)

        def cpu(one: Callable[[], float]) -> Callable[[], float]:
            def many() -> float:
                start = time.process_time()
                for _ in range(20):
                    one()
                return (time.process_time() - start) / 20

            return many

        cpu_times = interleaved(
            {"httpcore": cpu(core), "direct": cpu(direct), "through": cpu(through)}, rounds
        )
        ours.close()
    floor, bare, miss = (cpu_times[side] * 1e6 for side in ("httpcore", "direct", "through"))
    # Over httpcore, paired round by round (interleaved's "added", httpcore the first side).
    over_bare, over_miss = (cpu_times[f"{side} added"] * 1e6 for side in ("direct", "through"))
    row(
        "client CPU per cache miss: httpcore's pool → httpx GET + .json() → kratos-aal",
        f"{floor:.0f} → {bare:.0f} → {miss:.0f} µs (over httpcore, paired: httpx"
        f" +{over_bare:.0f} µs, kratos-aal +{over_miss:.0f} µs)",
        "(no target)",
        "reported",
    )
    added = (times["through"] - times["direct"]) * 1e6
    row(
        "added latency on a cache miss, beyond Kratos's own answer",
        f"{added:+.0f} µs ({times['direct'] * 1e6:.0f} → {times['through'] * 1e6:.0f} µs)",
        "(no target)",
        "reported",
    )


def memory_per_session(count: int) -> None:
    """Memory per cached session (BEHAVIOR.md §2's shape), measured with tracemalloc."""
    fake = FakeKratos(whoami_required_aal="aal1")
    template = fake.session_json(fake.session("aal2"))
    config = KratosConfig(public_url="http://kratos:4433", cache_maxsize=count)
    client = KratosClient(config)
    bodies = []
    for index in range(count):
        body = dict(template)
        body["id"] = f"{index:08d}-0000-4000-8000-000000000000"
        bodies.append(httpx.Response(200, json=body))
    credentials = [Credentials(cookie=f"cookie{index:032d}") for index in range(count)]
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    for response, credential in zip(bodies, credentials, strict=True):
        result, _ = parse_whoami(config, response, time.time())
        client._cache.put(b"s" + credential.cache_key(), result, 3600)
    gc.collect()
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    used = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
    assert len(client._cache) == count
    row(
        f"memory per cached session ({count:,} sessions)",
        f"{used / count / 1024:.1f} KiB",
        "(no target)",
        "reported",
    )


HIT_PATH: dict[str, Callable[[int, int], None]] = {
    "starlette": starlette_overhead,  # and WSGI
    "fastapi": fastapi_overhead,
    "django": lambda requests, rounds: django_overhead(requests // 2, rounds),
    "drf": lambda requests, rounds: drf_overhead(requests // 4, rounds),
    "flask": lambda requests, rounds: flask_overhead(requests // 2, rounds),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer rounds (a smoke run)")
    parser.add_argument("--only", help="comma-separated hit-path rows, e.g. starlette,django")
    args = parser.parse_args(argv)
    requests, rounds = (300, 5) if args.quick else (2000, 31)
    started = time.perf_counter()
    print("kratos-aal benchmarks: ratios and counts measured side by side\n", file=sys.stderr)
    only = set(args.only.split(",")) if args.only else None
    for name, run in HIT_PATH.items():
        if only is None or name in only:
            run(requests, rounds)
    if only is not None:
        return _table(started)
    coalescing()
    against_sdk(0.5 if args.quick else 3.0)
    cache_miss_latency(5 if args.quick else 30)
    memory_per_session(10_000 if args.quick else 100_000)
    several_instances(row, args.quick)
    return _table(started)


def _table(started: float) -> int:
    width = max(len(r[0]) for r in ROWS)
    print(f"\n| {'figure':<{width}} | measured | target | |")
    print(f"|{'-' * (width + 2)}|---|---|---|")
    for figure, value, target, verdict in ROWS:
        print(f"| {figure:<{width}} | {value} | {target} | {verdict} |")
    print(
        f"\n({sys.platform}, Python {sys.version.split()[0]}, "
        f"{time.perf_counter() - started:.0f} s)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

# No `from __future__ import annotations`: FastAPI reads the local routes' annotations.
"""``make bench``: SPEC §8's figures, each a ratio or a count measured side by side in one run.

Timings are medians over interleaved rounds (A, B, A, B, ...), so that a noisy, shared
machine slows both sides alike. Run: ``python -m benchmarks [--quick]``.
"""

import argparse
import asyncio
import gc
import statistics
import sys
import threading
import time
import tracemalloc
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from kratos_aal import AsyncKratosClient, Credentials, KratosClient, KratosConfig
from kratos_aal._core import parse_whoami
from kratos_aal.testing import FakeKratos, reserve_port, serve

from ._asgi import call, scope_for
from ._instances import several_instances

ROWS: list[tuple[str, str, str, str]] = []


def row(figure: str, value: str, target: str, verdict: str) -> None:
    ROWS.append((figure, value, target, verdict))
    print(f"  {figure}: {value} (target {target}) {verdict}", file=sys.stderr, flush=True)


def interleaved(sides: dict[str, Callable[[], float]], rounds: int) -> dict[str, float]:
    """Run each side once per round, alternating; return each side's median seconds."""
    samples: dict[str, list[float]] = {name: [] for name in sides}
    for _ in range(rounds):
        for name, measure in sides.items():
            samples[name].append(measure())
    return {name: statistics.median(values) for name, values in samples.items()}


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


# ----------------------------------------------------------------------------- overhead


def overhead_row(figure: str, times: dict[str, float], limit: float | None) -> None:
    """Report what *guarded* adds to *plain*, against *limit* (a share, e.g. 0.10)."""
    added = times["guarded"] / times["plain"] - 1
    value = f"+{added:.0%} ({times['plain'] * 1e6:.0f} → {times['guarded'] * 1e6:.0f} µs)"
    if limit is None:
        row(figure, value, "(no target)", "reported")
    else:
        row(figure, value, f"≤ +{limit:.0%}", "met" if added <= limit else "missed")


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


def starlette_overhead(requests: int, rounds: int) -> None:
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    from kratos_aal.integrations.starlette import KratosAALMiddleware

    async def endpoint(request: Any) -> PlainTextResponse:
        return PlainTextResponse("ok")

    fake, session = fake_with_session()
    plain = Starlette(routes=[Route("/billing", endpoint)])
    guarded = Starlette(
        routes=[Route("/billing", endpoint)],
        middleware=[
            Middleware(KratosAALMiddleware, client=async_client(fake), rules={"/billing": "aal2"})
        ],
    )
    headers = [(b"cookie", session.cookie_header.encode()), (b"accept", b"text/html")]
    scope = scope_for("/billing", headers)
    loop = asyncio.new_event_loop()

    def raw(app: Any) -> Callable[[], float]:
        return raw_asgi(loop, app, scope, requests)

    def client(app: Any) -> Callable[[], float]:
        http = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://testserver"
        )

        async def many() -> float:
            start = time.perf_counter()
            for _ in range(requests // 4):
                await http.get("/billing", headers={"Cookie": session.cookie_header})
            return (time.perf_counter() - start) / (requests // 4)

        return lambda: loop.run_until_complete(many())

    assert loop.run_until_complete(call(guarded, scope)) == 200  # warm the cache
    times = interleaved({"plain": raw(plain), "guarded": raw(guarded)}, rounds)
    overhead_row("Starlette, cache hit, raw ASGI call", times, 0.10)
    times = interleaved({"plain": client(plain), "guarded": client(guarded)}, rounds)
    overhead_row("Starlette, cache hit, httpx in-process client", times, 0.10)
    loop.close()


def fastapi_overhead(requests: int, rounds: int) -> None:
    from typing import Annotated

    from fastapi import Depends, FastAPI

    from kratos_aal import Session
    from kratos_aal.integrations.fastapi import KratosAALMiddleware, require_aal2

    fake, session = fake_with_session()
    plain = FastAPI()
    guarded = FastAPI()
    guarded.add_middleware(KratosAALMiddleware, client=async_client(fake))

    @plain.get("/billing")
    async def plain_billing() -> dict[str, str]:
        return {"ok": "yes"}

    @guarded.get("/billing")
    async def guarded_billing(session: Annotated[Session, Depends(require_aal2)]) -> dict[str, str]:
        return {"ok": "yes"}

    scope = scope_for("/billing", [(b"cookie", session.cookie_header.encode())])
    loop = asyncio.new_event_loop()

    def raw(app: Any) -> Callable[[], float]:
        return raw_asgi(loop, app, scope, requests)

    status = loop.run_until_complete(call(guarded, scope))
    assert status == 200, status
    times = interleaved({"plain": raw(plain), "guarded": raw(guarded)}, rounds)
    overhead_row("FastAPI, cache hit, RequireAAL", times, None)
    loop.close()


def django_overhead(requests: int, rounds: int) -> None:
    import django
    from django.conf import settings

    if not settings.configured:
        settings.configure(
            DEBUG=False,
            SECRET_KEY="bench",
            ALLOWED_HOSTS=["testserver"],
            ROOT_URLCONF="benchmarks._django_urls",
            # contrib.auth: DRF's anonymous user (drf_overhead); no middleware uses it.
            INSTALLED_APPS=[
                "django.contrib.contenttypes",
                "django.contrib.auth",
                "kratos_aal.integrations.django",
            ],
            MIDDLEWARE=[],
            KRATOS_AAL={"PUBLIC_URL": "http://127.0.0.1:4433"},
        )
        django.setup()
    from django.test import Client, RequestFactory
    from django.urls import path

    from kratos_aal.integrations.django.conf import override_clients

    from . import _django_urls

    fake, session = fake_with_session()
    view, guarded_view = _plain_view, _guarded_view()
    _django_urls.urlpatterns[:] = [path("plain", view), path("guarded", guarded_view)]
    factory = RequestFactory()
    request = factory.get("/billing", HTTP_COOKIE=session.cookie_header)

    def measure(target: Callable[[Any], Any]) -> Callable[[], float]:
        def many() -> float:
            start = time.perf_counter()
            for _ in range(requests):
                target(factory.get("/billing", HTTP_COOKIE=session.cookie_header))
            return (time.perf_counter() - start) / requests

        return many

    with override_clients(sync_client(fake), async_client(fake)):
        assert guarded_view(request).status_code == 200
        times = interleaved({"plain": measure(view), "guarded": measure(guarded_view)}, rounds)
        overhead_row("Django view, cache hit, @require_aal2 (view called directly)", times, 0.05)
        client = Client()
        client.cookies.load(session.cookies)

        def through(path: str) -> Callable[[], float]:
            def many() -> float:
                start = time.perf_counter()
                for _ in range(requests // 2):
                    assert client.get(path).status_code == 200
                return (time.perf_counter() - start) / (requests // 2)

            return many

        times = interleaved({"plain": through("/plain"), "guarded": through("/guarded")}, rounds)
    overhead_row(
        "Django view, cache hit, @require_aal2 (test Client, whole request cycle)", times, 0.05
    )


def _plain_view(request: Any) -> Any:
    from django.http import HttpResponse

    return HttpResponse("ok")


def _guarded_view() -> Any:
    from kratos_aal.integrations.django import require_aal2

    return require_aal2(_plain_view)


def drf_overhead(requests: int, rounds: int) -> None:
    """Run after :func:`django_overhead`, which configures Django."""
    from django.test import RequestFactory
    from rest_framework.permissions import AllowAny
    from rest_framework.response import Response
    from rest_framework.views import APIView

    from kratos_aal.integrations.django.conf import override_clients
    from kratos_aal.integrations.drf import IsAAL2, KratosAuthentication

    class Plain(APIView):  # type: ignore[misc]
        authentication_classes: list[Any] = []
        permission_classes = [AllowAny]

        def get(self, request: Any) -> Any:
            return Response({"ok": True})

    class Guarded(Plain):
        authentication_classes = [KratosAuthentication]
        permission_classes = [IsAAL2]

    fake, session = fake_with_session()
    factory = RequestFactory()
    plain, guarded = Plain.as_view(), Guarded.as_view()

    def measure(view: Callable[[Any], Any]) -> Callable[[], float]:
        def many() -> float:
            start = time.perf_counter()
            for _ in range(requests):
                response = view(factory.get("/billing", HTTP_COOKIE=session.cookie_header))
                response.render()
            return (time.perf_counter() - start) / requests

        return many

    with override_clients(sync_client(fake), async_client(fake)):
        check = guarded(factory.get("/billing", HTTP_COOKIE=session.cookie_header))
        assert check.status_code == 200
        times = interleaved({"plain": measure(plain), "guarded": measure(guarded)}, rounds)
    overhead_row("DRF APIView, cache hit, KratosAuthentication + IsAAL2", times, None)


def flask_overhead(requests: int, rounds: int) -> None:
    from flask import Flask

    from kratos_aal.integrations.flask import KratosAAL, require_aal2

    fake, session = fake_with_session()
    app = Flask(__name__)
    app.config["KRATOS_AAL"] = {"PUBLIC_URL": fake.public_url}
    KratosAAL(app, client=sync_client(fake))

    @app.get("/plain")
    def plain() -> str:
        return "ok"

    @app.get("/guarded")
    @require_aal2
    def guarded() -> str:
        return "ok"

    client = app.test_client()
    client.set_cookie(session.cookie_name, session.cookie)
    assert client.get("/guarded").status_code == 200

    def measure(path: str) -> Callable[[], float]:
        def many() -> float:
            start = time.perf_counter()
            for _ in range(requests):
                client.get(path)
            return (time.perf_counter() - start) / requests

        return many

    times = interleaved({"plain": measure("/plain"), "guarded": measure("/guarded")}, rounds)
    overhead_row("Flask view, cache hit, @require_aal2 (test client)", times, None)


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
    """What a cache miss adds beyond Kratos's own answer, over real loopback HTTP."""
    sock = reserve_port()
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    fake = FakeKratos(public_url=url, whoami_required_aal="aal1")
    cookies = [fake.session("aal2").cookie for _ in range(rounds * 20)]
    with serve(fake, sock=sock), httpx.Client() as raw:
        ours = KratosClient(KratosConfig(public_url=url, cache_ttl=0))
        position = iter(range(len(cookies)))

        def direct() -> float:
            cookie = cookies[next(position) % len(cookies)]
            start = time.perf_counter()
            raw.get(
                f"{url}/sessions/whoami", headers={"Cookie": f"{fake.cookie_name}={cookie}"}
            ).json()
            return time.perf_counter() - start

        def through() -> float:
            cookie = cookies[next(position) % len(cookies)]
            start = time.perf_counter()
            assert ours.check(Credentials(cookie=cookie), "aal2").allowed
            return time.perf_counter() - start

        times = interleaved({"direct": direct, "through": through}, rounds * 10)
        ours.close()
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer rounds (a smoke run)")
    args = parser.parse_args(argv)
    requests, rounds = (300, 5) if args.quick else (2000, 15)
    started = time.perf_counter()
    print("kratos-aal benchmarks: ratios and counts measured side by side\n", file=sys.stderr)
    starlette_overhead(requests, rounds)
    fastapi_overhead(requests, rounds)
    django_overhead(requests // 2, rounds)
    drf_overhead(requests // 2, rounds)
    flask_overhead(requests // 2, rounds)
    coalescing()
    against_sdk(0.5 if args.quick else 3.0)
    cache_miss_latency(5 if args.quick else 30)
    memory_per_session(10_000 if args.quick else 100_000)
    several_instances(row, args.quick)
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

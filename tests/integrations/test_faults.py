"""A fault run end to end: the Starlette example on uvicorn, FakeKratos behind a breaking proxy.

Every whoami call meets a reset, a stall, a 500, a 429 or garbage one time in five. Each
request uses its own session, so each one's fate is known: a fault must give 503, and
anything else exactly what Kratos's answer calls for. Never a 500, never a wrong 200.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any

import httpx

from examples.starlette_app import create_app
from kratos_aal import KratosConfig
from kratos_aal.testing import FakeKratos, FaultProxy, fault_proxy, reserve_port, serve

REQUESTS = 900
CONCURRENCY = 50
TIMEOUT = 5.0


def test_fault_run(tmp_path: Any) -> None:
    kratos_socket = reserve_port()
    kratos_url = f"http://127.0.0.1:{kratos_socket.getsockname()[1]}"
    fake = FakeKratos(public_url=kratos_url, whoami_required_aal="aal1")
    kinds = ["aal2", "aal1", "none"]
    plan = []
    for index in range(REQUESTS):
        kind = kinds[index % 3]
        if kind == "none":
            plan.append((kind, f"ory_kratos_session=forged{index:06d}"))
        else:
            plan.append((kind, fake.session(kind).cookie_header))
    # `timeout` bounds the whole exchange (pool wait included). It is long, so that only an
    # injected stall (which outlasts it) should exceed it; a busy machine that still makes an
    # honest answer late is told apart by when the proxy really sent that answer (below).
    proxy = FaultProxy(upstream=kratos_url, rate=0.2, stall=TIMEOUT + 3)
    with serve(fake, sock=kratos_socket), fault_proxy(proxy) as proxy_url:
        app = create_app(
            config=KratosConfig(public_url=proxy_url, browser_url=kratos_url, timeout=TIMEOUT)
        )
        # A long keep-alive: uvicorn closing an idle connection just as the load client
        # reuses it is a race of the test's own HTTP client, not of kratos-aal.
        with serve(app, timeout_keep_alive=120) as app_url:
            results = asyncio.run(_run(app_url, plan))

    faults = Counter(proxy.log.get(cookie, "never-sent") for _, cookie in plan)
    assert sum(faults[kind] for kind in ("reset", "stall", "500", "429", "garbage")) > 60, faults
    # "never-sent": the app gave up (its timeout) before the proxy read the request, which
    # happens on a loaded machine; those must be 503 too.
    wrong = []
    late = 0
    retry_after: dict[bool, list[str | None]] = {True: [], False: []}
    for (kind, cookie), (status, headers, started) in zip(plan, results, strict=True):
        fault = proxy.log.get(cookie)
        # A fault, or no whoami reached Kratos at all (a pooled connection the proxy had
        # dropped): either way Kratos vouched for nothing, and the answer is 503.
        expected = 503 if fault != "pass" else 200 if kind == "aal2" else 303
        # An untouched answer that left the proxy more than half the app's timeout after our
        # request started is "the machine was slow": the app may have timed out first (503).
        if (
            fault == "pass"
            and status == 503
            and proxy.sent_at.get(cookie, started) - started > TIMEOUT / 2
        ):
            late += 1
            expected = 503
        if status != expected:
            wrong.append((kind, fault, status, round(proxy.sent_at.get(cookie, 0) - started, 2)))
        if status == 503:
            retry_after[fault == "429"].append(headers.get("retry-after"))
        if status == 303:
            assert headers["location"].startswith(f"{kratos_url}/self-service/")
    assert wrong == [], wrong[:20]
    # Kratos's own Retry-After (7) comes through on its 429s; every other fault gets ours
    # (5). A 429 that reached the proxy after the app's timeout had already fired on a
    # loaded machine is a timeout to the app (5): allowed, but only as a minority.
    assert set(retry_after[False]) == {"5"}, Counter(retry_after[False])
    assert set(retry_after[True]) <= {"7", "5"}, Counter(retry_after[True])
    assert "7" in retry_after[True], Counter(retry_after[True])
    statuses = Counter(status for status, _, _ in results)
    assert 500 not in statuses
    assert statuses[503] == REQUESTS - faults["pass"] + late


async def _run(app_url: str, plan: list[tuple[str, str]]) -> list[tuple[int, httpx.Headers, float]]:
    limits = httpx.Limits(max_connections=CONCURRENCY)
    semaphore = asyncio.Semaphore(CONCURRENCY)
    async with httpx.AsyncClient(base_url=app_url, limits=limits, timeout=30) as http:

        async def one(cookie: str) -> tuple[int, httpx.Headers, float]:
            async with semaphore:
                started = time.monotonic()
                reply = await http.get(
                    "/billing", headers={"Cookie": cookie, "Accept": "text/html"}
                )
                return reply.status_code, reply.headers, started

        return await asyncio.gather(*(one(cookie) for _, cookie in plan))

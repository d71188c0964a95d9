"""Bounded cost per request (SPEC §8): what a client controls costs at most one Kratos call.

A bogus cookie repeated, an aal1 user without a second factor, a logout racing a lookup:
each on the blocking and the awaitable client.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import httpx
import pytest

from kratos_aal import AsyncKratosClient, Credentials, KratosClient, KratosConfig, Outcome
from kratos_aal._cache import HOLD_TTL
from kratos_aal._kratos_api import NO_SESSION_TTL
from kratos_aal.testing import FakeKratos

from .conftest import APP, Driver

WHOAMI = "/sessions/whoami"
PROBE = "/self-service/login/browser"


def cookie(session: Any) -> Credentials:
    return Credentials(cookie=session.cookie)


# ----------------------------------------------------------------------------- 401 memory


async def test_a_bogus_cookie_costs_one_call_within_the_401_memory(
    driver: Driver, fake: FakeKratos
) -> None:
    bogus = Credentials(cookie="not-a-session")
    for _ in range(50):
        assert (await driver.check(bogus, "aal1", APP)).outcome is Outcome.LOGIN
    assert fake.calls[WHOAMI] == 1
    fake.clock.advance(NO_SESSION_TTL - 0.5)
    assert (await driver.check(bogus, "aal2", APP)).outcome is Outcome.LOGIN
    assert fake.calls[WHOAMI] == 1
    fake.clock.advance(0.5)  # the memory has lapsed: Kratos is asked again, once
    for _ in range(50):
        assert (await driver.check(bogus, "aal1", APP)).outcome is Outcome.LOGIN
    assert fake.calls[WHOAMI] == 2
    assert await driver.whoami(bogus) is None
    assert fake.calls[WHOAMI] == 2


async def test_each_bogus_credential_is_asked_once(driver: Driver, fake: FakeKratos) -> None:
    for _ in range(3):
        for n in range(10):
            await driver.check(Credentials(cookie=f"bogus-{n}"), "aal1", APP)
            await driver.check(Credentials(token=f"ory_st_bogus{n}"), "aal1", APP)
    assert fake.calls[WHOAMI] == 20


async def test_no_401_memory_without_a_cache(make_driver: Any, fake: FakeKratos) -> None:
    driver = make_driver(fake, cache_ttl=0)
    for _ in range(3):
        await driver.check(Credentials(cookie="not-a-session"), "aal1", APP)
    assert fake.calls[WHOAMI] == 3


async def test_the_401_memory_never_outlives_cache_ttl(make_driver: Any, fake: FakeKratos) -> None:
    driver = make_driver(fake, cache_ttl=1)
    await driver.check(Credentials(cookie="not-a-session"), "aal1", APP)
    fake.clock.advance(1)
    await driver.check(Credentials(cookie="not-a-session"), "aal1", APP)
    assert fake.calls[WHOAMI] == 2


async def test_bogus_cookies_never_push_a_session_out_of_the_cache(
    make_driver: Any, fake: FakeKratos
) -> None:
    # Each bogus cookie's 401 is remembered: a flood of them (each a call of its own)
    # must not evict a real user's session, whose every request would then cost a call.
    driver = make_driver(fake, cache_maxsize=20)
    user = cookie(fake.session("aal2"))
    assert (await driver.check(user, "aal2", APP)).outcome is Outcome.ALLOW
    for round_ in range(5):
        for n in range(40):
            await driver.check(Credentials(cookie=f"bogus-{round_}-{n}"), "aal1", APP)
        assert (await driver.check(user, "aal2", APP)).outcome is Outcome.ALLOW
    assert fake.calls[WHOAMI] == 1 + 5 * 40


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


def answer_401(cache_for: str | None) -> Any:
    calls: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        headers = {"Ory-Session-Cache-For": cache_for} if cache_for is not None else {}
        return httpx.Response(401, json={"error": {"code": 401}}, headers=headers)

    return calls, httpx.MockTransport(handler)


@pytest.mark.parametrize(("cache_for", "remembered"), [("2", 2.0), ("0", 0.0), ("60", 5.0)])
@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_the_401_memory_never_outlives_kratos_cache_for(
    mode: str, cache_for: str, remembered: float
) -> None:
    calls, transport = answer_401(cache_for)
    clock = Clock()
    config = KratosConfig(public_url="http://127.0.0.1:4433")
    bogus = Credentials(cookie="bogus")
    if mode == "sync":
        with httpx.Client(transport=transport) as http:
            client = KratosClient(config, http_client=http, timer=clock)
            first = client.check(bogus, "aal1", APP)
            again = client.check(bogus, "aal1", APP)
            clock.now += max(remembered - 0.01, 0)
            third = client.check(bogus, "aal1", APP)
            clock.now += 0.02
            fourth = client.check(bogus, "aal1", APP)
    else:
        async with httpx.AsyncClient(transport=transport) as ahttp:
            aclient = AsyncKratosClient(config, http_client=ahttp, timer=clock)
            first = await aclient.check(bogus, "aal1", APP)
            again = await aclient.check(bogus, "aal1", APP)
            clock.now += max(remembered - 0.01, 0)
            third = await aclient.check(bogus, "aal1", APP)
            clock.now += 0.02
            fourth = await aclient.check(bogus, "aal1", APP)
    assert {d.outcome for d in (first, again, third, fourth)} == {Outcome.LOGIN}
    # Remembered while the memory lasts, asked again once it lapsed (at once with 0).
    assert len(calls) == (4 if remembered == 0 else 2)


# ----------------------------------------------------------------------------- second factor


@pytest.mark.parametrize("admin", [False, True], ids=["probe", "admin-api"])
async def test_no_second_factor_is_cached_too(make_driver: Any, admin: bool) -> None:
    fake = FakeKratos(whoami_required_aal="aal1")
    driver = make_driver(fake, **({"admin_url": fake.admin_url} if admin else {}))
    session = fake.session("aal1", totp=False)
    for _ in range(50):
        assert (await driver.check(cookie(session), "aal2", APP)).outcome is Outcome.ENROLL
    probes = fake.calls[PROBE] + sum(
        1 for r in fake.requests if r.url.path.startswith("/admin/identities/")
    )
    assert probes == 1
    # Every denial still asks whoami afresh (SPEC §3): one call per request, no more.
    assert fake.calls[WHOAMI] == 50


async def test_a_logout_between_denials_costs_no_probe(driver: Driver, fake: FakeKratos) -> None:
    # The app's logout view is a request like any other: an aal1 user without a second
    # factor who alternates it with an aal2 page must not cost a probe (a stored login
    # flow) per round. Only a "yes" learned from an aal2 session is forgotten by a logout.
    user = cookie(fake.session("aal1", totp=False))
    for _ in range(20):
        assert (await driver.check(user, "aal2", APP)).outcome is Outcome.ENROLL
        driver.client.invalidate(user)
    assert fake.calls[PROBE] == 1
    assert fake.calls[WHOAMI] == 20


async def test_a_cached_no_traps_nobody_who_pairs_a_device(
    driver: Driver, fake: FakeKratos
) -> None:
    session = fake.session("aal1", totp=False)
    token = Credentials(token=session.token)
    assert (await driver.check(token, "aal2", APP)).outcome is Outcome.ENROLL
    assert (await driver.check(token, "aal2", APP)).outcome is Outcome.ENROLL
    # "no" is cached: one probe (tokens probe on the browser route too, as JSON)
    assert fake.calls["/self-service/login/browser"] == 1
    # Pairing TOTP in the settings flow upgrades the session in place to aal2.
    with httpx.Client(transport=fake.transport(), base_url=fake.public_url) as api:
        flow = api.get("/self-service/settings/api", headers=session.headers).json()
        secret = fake.pending_totp_secret(flow["id"])
        done = api.post(
            f"/self-service/settings?flow={flow['id']}",
            headers=session.headers,
            json={"method": "totp", "totp_code": fake.totp_code(session.identity, secret=secret)},
        )
    assert done.status_code == 200, done.text
    decision = await driver.check(token, "aal2", APP)
    assert decision.outcome is Outcome.ALLOW
    assert decision.session.aal == "aal2"
    # And a later aal1 session of that identity is stepped up, not sent to pair again.
    again = fake.session("aal1", identity=session.identity)
    assert (await driver.check(Credentials(token=again.token), "aal2", APP)).outcome is (
        Outcome.STEP_UP
    )


# ----------------------------------------------------------------------------- logout at once


class Gate(httpx.BaseTransport, httpx.AsyncBaseTransport):
    """FakeKratos's transport, whose next whoami answer is held until :meth:`release`.

    Kratos answers when the request arrives (the session is still active then); the
    answer reaches the client only when the test says so.
    """

    def __init__(self, fake: FakeKratos) -> None:
        self.inner = fake.transport()
        self.armed = False
        self.started = threading.Event()
        self.released = threading.Event()

    def arm(self) -> None:
        self.armed = True
        self.started.clear()
        self.released.clear()

    def release(self) -> None:
        self.released.set()

    def _hold(self, request: httpx.Request) -> bool:
        if not (self.armed and request.url.path == WHOAMI):
            return False
        self.armed = False
        self.started.set()
        return True

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        if self._hold(request):
            assert self.released.wait(30)
        return response

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        if self._hold(request):
            assert await asyncio.to_thread(self.released.wait, 30)
        return response


def gated_client(fake: FakeKratos, mode: str, gate: Gate, **config: Any) -> Any:
    settings = fake.config(timeout=60, **config)  # only the gate holds an answer
    if mode == "sync":
        return KratosClient(settings, http_client=httpx.Client(transport=gate), timer=fake.clock)
    return AsyncKratosClient(
        settings, http_client=httpx.AsyncClient(transport=gate), timer=fake.clock
    )


async def check_held(client: Any, credentials: Credentials, gate: Gate) -> Any:
    """Start a check whose whoami the gate holds; return an awaitable of its decision."""
    gate.arm()
    if isinstance(client, KratosClient):
        future = asyncio.ensure_future(asyncio.to_thread(client.check, credentials, "aal1", APP))
    else:
        future = asyncio.ensure_future(client.check(credentials, "aal1", APP))
    assert await asyncio.to_thread(gate.started.wait, 30)
    return future


async def check(client: Any, credentials: Credentials) -> Outcome:
    if isinstance(client, KratosClient):
        return (await asyncio.to_thread(client.check, credentials, "aal1", APP)).outcome
    return (await client.check(credentials, "aal1", APP)).outcome  # type: ignore[no-any-return]


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_a_whoami_under_way_at_the_logout_caches_nothing(fake: FakeKratos, mode: str) -> None:
    gate = Gate(fake)
    client = gated_client(fake, mode, gate)
    session = fake.session("aal1")
    held = await check_held(client, cookie(session), gate)
    client.invalidate(cookie(session))  # the logout view runs while Kratos's answer travels
    fake.revoke(session)  # and the browser reaches Kratos's logout
    gate.release()
    assert (await held).outcome is Outcome.ALLOW  # that request may use what it asked
    assert await check(client, cookie(session)) is Outcome.LOGIN  # no later one
    assert fake.calls[WHOAMI] == 2


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_a_request_between_logout_and_kratos_caches_nothing(
    fake: FakeKratos, mode: str
) -> None:
    gate = Gate(fake)
    client = gated_client(fake, mode, gate)
    session = fake.session("aal1")
    assert await check(client, cookie(session)) is Outcome.ALLOW
    client.invalidate(cookie(session))  # logout_url() sends the browser on to Kratos ...
    # ... and another tab (or a stolen cookie) comes first: Kratos still knows the session,
    # which is kept for the checks of that request (HOLD_TTL), no longer.
    assert await check(client, cookie(session)) is Outcome.ALLOW
    fake.revoke(session)  # the browser reaches Kratos's logout
    fake.clock.advance(HOLD_TTL)
    assert await check(client, cookie(session)) is Outcome.LOGIN
    assert fake.calls[WHOAMI] == 3


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_after_the_hold_a_session_is_cached_again(fake: FakeKratos, mode: str) -> None:
    gate = Gate(fake)
    client = gated_client(fake, mode, gate, cache_ttl=30)
    session = fake.session("aal1")
    assert await check(client, cookie(session)) is Outcome.ALLOW
    client.invalidate(cookie(session))  # a logout the user never completed
    fake.clock.advance(28)
    for _ in range(2):  # held back: kept for HOLD_TTL only
        assert await check(client, cookie(session)) is Outcome.ALLOW
        assert await check(client, cookie(session)) is Outcome.ALLOW
        fake.clock.advance(HOLD_TTL)
    assert fake.calls[WHOAMI] == 3
    for _ in range(3):  # the hold is over: cached for cache_ttl again
        assert await check(client, cookie(session)) is Outcome.ALLOW
        fake.clock.advance(HOLD_TTL)
    assert fake.calls[WHOAMI] == 4


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_logout_url_invalidates_at_once_too(fake: FakeKratos, mode: str) -> None:
    gate = Gate(fake)
    client = gated_client(fake, mode, gate)
    session = fake.session("aal1")
    held = await check_held(client, cookie(session), gate)
    if isinstance(client, KratosClient):
        url = await asyncio.to_thread(client.logout_url, cookie(session), APP)
    else:
        url = await client.logout_url(cookie(session), APP)
    assert url is not None and "/self-service/logout?" in url
    gate.release()
    assert (await held).outcome is Outcome.ALLOW
    assert await check(client, cookie(session)) is Outcome.ALLOW  # asked again: still active
    fake.revoke(session)
    fake.clock.advance(HOLD_TTL)
    assert await check(client, cookie(session)) is Outcome.LOGIN
    assert fake.calls[WHOAMI] == 3

"""KratosClient and AsyncKratosClient against FakeKratos: every SPEC §3 row, on both paths."""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from kratos_aal import (
    AsyncKratosClient,
    Credentials,
    KratosClient,
    KratosConfig,
    KratosUnavailable,
    Outcome,
    Requirement,
    StepUpRequired,
)
from kratos_aal.testing import FakeKratos, Fault

from .conftest import APP, Driver

WHOAMI = "/sessions/whoami"


def query(url: str | None) -> dict[str, list[str]]:
    assert url is not None
    return parse_qs(urlsplit(url).query)


def cookie(session: Any) -> Credentials:
    return Credentials(cookie=session.cookie)


# ----------------------------------------------------------------------------- SPEC §3 rows


async def test_no_credentials_is_login_without_a_call(driver: Driver, fake: FakeKratos) -> None:
    decision = await driver.check(Credentials(), "aal2", APP)
    assert decision.outcome is Outcome.LOGIN
    assert decision.redirect_to == (
        "http://127.0.0.1:4433/self-service/login/browser?return_to=http%3A%2F%2Ftestserver%2Fbilling"
    )
    assert fake.calls[WHOAMI] == 0


async def test_unknown_session_is_login_never_aal2(driver: Driver, fake: FakeKratos) -> None:
    decision = await driver.check(Credentials(cookie="not-a-session"), "aal2", APP)
    assert decision.outcome is Outcome.LOGIN
    assert decision.session is None
    # aal=aal2 without a session is Kratos's session_aal1_required: never ask for it here.
    assert "aal" not in query(decision.redirect_to)
    assert query(decision.redirect_to)["return_to"] == [APP]
    assert fake.calls[WHOAMI] == 1


async def test_aal2_session_is_allowed_with_the_session(driver: Driver, fake: FakeKratos) -> None:
    session = fake.session("aal2")
    decision = await driver.check(cookie(session), "aal2", APP)
    assert decision.outcome is Outcome.ALLOW
    assert decision.allowed
    assert decision.redirect_to is None
    assert decision.session.id == session.id
    assert decision.session.method_names == ("password", "totp")


async def test_aal1_session_meets_aal1(driver: Driver, fake: FakeKratos) -> None:
    session = fake.session("aal1")
    assert (await driver.check(cookie(session), "aal1", APP)).outcome is Outcome.ALLOW


async def test_aal1_with_second_factor_steps_up(driver: Driver, fake: FakeKratos) -> None:
    session = fake.session("aal1", totp=True)
    decision = await driver.check(cookie(session), "aal2", APP)
    assert decision.outcome is Outcome.STEP_UP
    assert decision.session is not None and decision.session.id == session.id
    url = urlsplit(decision.redirect_to)
    assert url.path == "/self-service/login/browser"
    assert query(decision.redirect_to) == {"aal": ["aal2"], "return_to": [APP]}


async def test_aal1_without_second_factor_enrolls(driver: Driver, fake: FakeKratos) -> None:
    session = fake.session("aal1", totp=False)
    decision = await driver.check(cookie(session), "aal2", APP)
    assert decision.outcome is Outcome.ENROLL
    assert urlsplit(decision.redirect_to).path == "/self-service/settings/browser"
    assert query(decision.redirect_to) == {"return_to": [APP]}


async def test_whoami_403_aal2_required_steps_up(make_driver: Any) -> None:
    strict = FakeKratos(whoami_required_aal="highest_available", public_url="http://kratos:4433")
    driver = make_driver(strict, browser_url="http://127.0.0.1:4455/kratos")
    session = strict.session("aal1", totp=True)
    decision = await driver.check(cookie(session), "aal1", APP)
    assert decision.outcome is Outcome.STEP_UP
    # Kratos wrote its internal URL; the browser gets browser_url, with return_to added.
    assert decision.redirect_to == (
        "http://127.0.0.1:4455/kratos/self-service/login/browser?aal=aal2"
        "&return_to=http%3A%2F%2Ftestserver%2Fbilling"
    )
    assert decision.session is None
    with pytest.raises(StepUpRequired) as raised:
        await driver.whoami(cookie(session))
    assert raised.value.redirect_to.startswith("http://127.0.0.1:4455/kratos/self-service/")


async def test_highest_available_allows_aal2_and_plain_aal1_users(make_driver: Any) -> None:
    strict = FakeKratos()
    driver = make_driver(strict)
    assert (await driver.check(cookie(strict.session("aal2")), "aal2", APP)).allowed
    assert (await driver.check(cookie(strict.session("aal1")), "aal1", APP)).allowed


async def test_max_age_exceeded_reauthenticates(driver: Driver, fake: FakeKratos) -> None:
    session = fake.session("aal2", authenticated_at=301)
    decision = await driver.check(cookie(session), Requirement("aal2", max_age=300), APP)
    assert decision.outcome is Outcome.REAUTHENTICATE
    assert query(decision.redirect_to) == {"aal": ["aal2"], "refresh": ["true"], "return_to": [APP]}
    fresh = fake.session("aal2", authenticated_at=200)
    assert (await driver.check(cookie(fresh), Requirement("aal2", max_age=300), APP)).allowed


async def test_max_age_counts_methods_of_the_required_level(
    driver: Driver, fake: FakeKratos
) -> None:
    # A fresh password does not make an old second factor fresh again.
    from datetime import timedelta

    session = fake.session("aal2", authenticated_at=600)
    record = fake._sessions[session.id]
    record.methods[0]["completed_at"] = fake._method("password", fake.clock.now())["completed_at"]
    assert (
        await driver.check(cookie(session), Requirement("aal1", max_age=timedelta(minutes=5)), APP)
    ).allowed
    decision = await driver.check(cookie(session), Requirement("aal2", max_age=300), APP)
    assert decision.outcome is Outcome.REAUTHENTICATE


async def test_the_clock_moving_past_max_age_reauthenticates(
    driver: Driver, fake: FakeKratos
) -> None:
    session = fake.session("aal2")
    rule = Requirement("aal2", max_age=60)
    assert (await driver.check(cookie(session), rule, APP)).allowed
    fake.clock.advance(61)
    assert (await driver.check(cookie(session), rule, APP)).outcome is Outcome.REAUTHENTICATE


async def test_missing_required_method_reauthenticates(driver: Driver, fake: FakeKratos) -> None:
    session = fake.session("aal2")
    rule = Requirement("aal2", methods={"webauthn", "passkey"})
    decision = await driver.check(cookie(session), rule, APP)
    assert decision.outcome is Outcome.REAUTHENTICATE
    keyed = fake.session("aal2", methods=["password", "webauthn"])
    assert (await driver.check(cookie(keyed), rule, APP)).allowed


@pytest.mark.parametrize(
    ("fault", "retry_after"),
    [
        pytest.param(Fault("timeout"), 5, id="timeout"),
        pytest.param(Fault("reset"), 5, id="connection-reset"),
        pytest.param(Fault("status", status=500), 5, id="500"),
        pytest.param(Fault("status", status=502), 5, id="502"),
        pytest.param(Fault("status", status=429, retry_after=7), 7, id="429-retry-after"),
        pytest.param(Fault("status", status=429), 5, id="429"),
        pytest.param(Fault("status", status=403), 5, id="403-not-aal"),
        pytest.param(Fault("status", status=404), 5, id="404"),
        pytest.param(Fault("garbage"), 5, id="not-json"),
        pytest.param(Fault("not_a_session"), 5, id="not-a-session"),
    ],
)
async def test_kratos_trouble_is_unavailable_never_allow_never_login(
    driver: Driver, fake: FakeKratos, fault: Fault, retry_after: int
) -> None:
    session = fake.session("aal2")
    fake.fail(fault)
    decision = await driver.check(cookie(session), "aal1", APP)
    assert decision.outcome is Outcome.UNAVAILABLE
    assert decision.redirect_to is None
    assert decision.session is None
    assert decision.retry_after == retry_after
    # The fault was one-shot: the next check sees Kratos again, and nothing bad was cached.
    assert (await driver.check(cookie(session), "aal1", APP)).allowed


async def test_whoami_raises_unavailable(driver: Driver, fake: FakeKratos) -> None:
    fake.fail("status", status=503)
    with pytest.raises(KratosUnavailable) as raised:
        await driver.whoami(Credentials(cookie="abc"))
    assert raised.value.status_code == 503


@pytest.mark.parametrize(
    "body", [b'{"id": "x", "active": "yes"}', b'{"id": "x", "active": false}', b"[]"]
)
async def test_odd_200_bodies_are_unavailable(make_driver: Any, body: bytes) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=body)

    config = KratosConfig(public_url="http://kratos:4433")
    for client in (
        KratosClient(config, http_client=httpx.Client(transport=httpx.MockTransport(handler))),
        AsyncKratosClient(
            config, http_client=httpx.AsyncClient(transport=httpx.MockTransport(handler))
        ),
    ):
        driver = Driver(client, "mock")
        decision = await driver.check(Credentials(cookie="abc"), "aal1", APP)
        assert decision.outcome is Outcome.UNAVAILABLE
        await driver.close()


async def test_kratos_not_listening_is_unavailable() -> None:
    # A real connection attempt to a closed port on loopback.
    config = KratosConfig(public_url="http://127.0.0.1:9", timeout=2)
    with KratosClient(config) as client:
        assert client.check(Credentials(cookie="abc"), "aal1", APP).outcome is Outcome.UNAVAILABLE
    async with AsyncKratosClient(config) as aclient:
        decision = await aclient.check(Credentials(cookie="abc"), "aal1", APP)
        assert decision.outcome is Outcome.UNAVAILABLE


async def test_slow_kratos_times_out_as_unavailable() -> None:
    async def slow(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(5)
        return httpx.Response(200)

    # The request carries the configured timeout; a real server that stalls shows it.
    import uvicorn

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            await asyncio.sleep(5)

    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=0, log_level="error", lifespan="off")
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    config = KratosConfig(public_url=f"http://127.0.0.1:{port}", timeout=0.2)
    async with AsyncKratosClient(config) as client:
        loop = asyncio.get_running_loop()
        started = loop.time()
        decision = await client.check(Credentials(cookie="abc"), "aal1", APP)
        assert decision.outcome is Outcome.UNAVAILABLE
        assert loop.time() - started < 2
    server.should_exit = True
    await task


# ----------------------------------------------------------------------------- second factor


async def test_admin_api_answers_the_second_factor_question(make_driver: Any) -> None:
    fake = FakeKratos(whoami_required_aal="aal1", admin_token="secret-admin-token")
    driver = make_driver(fake, admin_url=fake.admin_url, admin_token="secret-admin-token")
    with_totp = fake.session("aal1", totp=True)
    without = fake.session("aal1", totp=False)
    assert (await driver.check(cookie(with_totp), "aal2", APP)).outcome is Outcome.STEP_UP
    assert (await driver.check(cookie(without), "aal2", APP)).outcome is Outcome.ENROLL
    assert fake.calls["/self-service/login/browser"] == 0
    admin_calls = [r for r in fake.requests if r.url.path.startswith("/admin/identities/")]
    assert len(admin_calls) == 2
    assert admin_calls[0].headers["Authorization"] == "Bearer secret-admin-token"
    assert "include_credential=totp" in str(admin_calls[0].url)


async def test_second_factor_answer_is_cached_per_identity(
    driver: Driver, fake: FakeKratos
) -> None:
    session = fake.session("aal1", totp=True)
    for _ in range(3):
        assert (await driver.check(cookie(session), "aal2", APP)).outcome is Outcome.STEP_UP
    assert fake.calls["/self-service/login/browser"] == 1


async def test_token_sessions_probe_with_the_browser_flow(driver: Driver, fake: FakeKratos) -> None:
    """Kratos lists WebAuthn nodes in browser flows only (strategy/webauthn/login.go): the
    probe of a token session uses the browser route, answered as JSON, with the token."""
    without = fake.session("aal1", totp=False)
    decision = await driver.check(Credentials(token=without.token), "aal2", APP)
    assert decision.outcome is Outcome.ENROLL
    assert fake.calls["/self-service/login/browser"] == 1
    probe = next(r for r in fake.requests if r.url.path == "/self-service/login/browser")
    assert probe.headers["X-Session-Token"] == without.token
    assert "Cookie" not in probe.headers


@pytest.mark.parametrize("path", ["/self-service/login/browser", "/admin/identities/"])
async def test_failed_probe_prefers_step_up(make_driver: Any, path: str) -> None:
    fake = FakeKratos(whoami_required_aal="aal1")
    extra = {"admin_url": fake.admin_url} if path.startswith("/admin") else {}
    driver = make_driver(fake, **extra)
    session = fake.session("aal1", totp=False)
    fake.fail(Fault("status", status=500, path_prefix=path))
    assert (await driver.check(cookie(session), "aal2", APP)).outcome is Outcome.STEP_UP


# ----------------------------------------------------------------------------- the cache


async def test_cache_hit_makes_no_call(driver: Driver, fake: FakeKratos) -> None:
    session = fake.session("aal2")
    for _ in range(5):
        assert (await driver.check(cookie(session), "aal2", APP)).allowed
    assert fake.calls[WHOAMI] == 1


async def test_cache_expires_after_cache_ttl(make_driver: Any, fake: FakeKratos) -> None:
    driver = make_driver(fake, cache_ttl=10)
    session = fake.session("aal2")
    await driver.check(cookie(session), "aal2", APP)
    fake.clock.advance(9)
    await driver.check(cookie(session), "aal2", APP)
    assert fake.calls[WHOAMI] == 1
    fake.clock.advance(2)
    await driver.check(cookie(session), "aal2", APP)
    assert fake.calls[WHOAMI] == 2


async def test_cache_ttl_zero_disables_the_cache(make_driver: Any, fake: FakeKratos) -> None:
    driver = make_driver(fake, cache_ttl=0)
    session = fake.session("aal2")
    for _ in range(3):
        assert (await driver.check(cookie(session), "aal2", APP)).allowed
    assert fake.calls[WHOAMI] == 3


async def test_expired_session_is_never_served_from_cache(driver: Driver, fake: FakeKratos) -> None:
    session = fake.session("aal2", expires_in=5)
    assert (await driver.check(cookie(session), "aal2", APP)).allowed
    fake.clock.advance(6)
    assert (await driver.check(cookie(session), "aal2", APP)).outcome is Outcome.LOGIN
    assert fake.calls[WHOAMI] == 2


async def test_ory_session_cache_for_caps_the_ttl(make_driver: Any) -> None:
    fake = FakeKratos(whoami_required_aal="aal1", cacheable_sessions=2)
    driver = make_driver(fake)
    session = fake.session("aal2")
    await driver.check(cookie(session), "aal2", APP)
    fake.clock.advance(3)
    await driver.check(cookie(session), "aal2", APP)
    assert fake.calls[WHOAMI] == 2


async def test_revoked_session_is_denied_within_cache_ttl(
    make_driver: Any, fake: FakeKratos
) -> None:
    driver = make_driver(fake, cache_ttl=10)
    session = fake.session("aal2")
    assert (await driver.check(cookie(session), "aal2", APP)).allowed
    fake.revoke(session)
    fake.clock.advance(10.5)
    assert (await driver.check(cookie(session), "aal2", APP)).outcome is Outcome.LOGIN


async def test_invalidate_drops_the_entry_at_once(driver: Driver, fake: FakeKratos) -> None:
    session = fake.session("aal2")
    assert (await driver.check(cookie(session), "aal2", APP)).allowed
    fake.revoke(session)
    driver.invalidate(cookie(session))
    assert (await driver.check(cookie(session), "aal2", APP)).outcome is Outcome.LOGIN
    driver.invalidate(Credentials())  # nothing to drop: no error


async def test_cache_is_bounded(make_driver: Any, fake: FakeKratos) -> None:
    driver = make_driver(fake, cache_maxsize=2)
    for _ in range(5):
        await driver.check(cookie(fake.session("aal2")), "aal2", APP)
    assert len(driver.client._cache) == 2


async def test_denial_from_cache_is_rechecked(driver: Driver, fake: FakeKratos) -> None:
    session = fake.session("aal1", totp=True)
    assert (await driver.check(cookie(session), "aal1", APP)).allowed
    assert fake.calls[WHOAMI] == 1
    # The cached copy says aal1: before sending anyone to step-up, ask Kratos again.
    assert (await driver.check(cookie(session), "aal2", APP)).outcome is Outcome.STEP_UP
    assert fake.calls[WHOAMI] == 2


async def test_step_up_in_place_is_seen_at_once(driver: Driver, fake: FakeKratos) -> None:
    """Kratos upgrades the session in place (same token): the next check allows."""
    session = fake.session("aal1", totp=True)
    token = Credentials(token=session.token)
    assert (await driver.check(token, "aal1", APP)).allowed  # cached as aal1
    with httpx.Client(transport=fake.transport(), base_url=fake.public_url) as api:
        flow = api.get(
            "/self-service/login/api", params={"aal": "aal2"}, headers=session.headers
        ).json()
        done = api.post(
            f"/self-service/login?flow={flow['id']}",
            headers=session.headers,
            json={"method": "totp", "totp_code": fake.totp_code(session.identity)},
        )
    assert done.status_code == 200
    assert done.json()["session_token"] == session.token
    decision = await driver.check(token, "aal2", APP)
    assert decision.outcome is Outcome.ALLOW
    assert decision.session.aal == "aal2"


async def test_enrollment_in_place_is_seen_at_once(driver: Driver, fake: FakeKratos) -> None:
    session = fake.session("aal1", totp=False)
    token = Credentials(token=session.token)
    assert (await driver.check(token, "aal2", APP)).outcome is Outcome.ENROLL
    with httpx.Client(transport=fake.transport(), base_url=fake.public_url) as api:
        flow = api.get("/self-service/settings/api", headers=session.headers).json()
        secret = fake.pending_totp_secret(flow["id"])
        done = api.post(
            f"/self-service/settings?flow={flow['id']}",
            headers=session.headers,
            json={"method": "totp", "totp_code": fake.totp_code(session.identity, secret=secret)},
        )
    assert done.status_code == 200, done.text
    assert (await driver.check(token, "aal2", APP)).allowed


# ----------------------------------------------------------------------------- coalescing


async def test_concurrent_cold_lookups_make_one_call_asyncio(fake: FakeKratos) -> None:
    fake.latency = 0.05
    session = fake.session("aal2")
    async with fake.async_client() as client:
        decisions = await asyncio.gather(
            *(client.check(cookie(session), "aal2", APP) for _ in range(1000))
        )
        await client._injected.aclose()
    assert all(d.allowed for d in decisions)
    assert fake.calls[WHOAMI] == 1


def test_concurrent_cold_lookups_make_one_call_threads(fake: FakeKratos) -> None:
    fake.latency = 0.05
    session = fake.session("aal2")
    with fake.client() as client, ThreadPoolExecutor(max_workers=64) as pool:
        decisions = list(
            pool.map(lambda _: client.check(cookie(session), "aal2", APP), range(1000))
        )
        client._http.close()
    assert all(d.allowed for d in decisions)
    assert fake.calls[WHOAMI] == 1


async def test_coalesced_failure_reaches_every_waiter_once(fake: FakeKratos) -> None:
    fake.latency = 0.05
    fake.fail("status", status=500)
    async with fake.async_client() as client:
        decisions = await asyncio.gather(
            *(client.check(Credentials(cookie="c"), "aal1", APP) for _ in range(200))
        )
        await client._injected.aclose()
    assert {d.outcome for d in decisions} == {Outcome.UNAVAILABLE}
    assert fake.calls[WHOAMI] == 1


def test_coalesced_failure_threads(fake: FakeKratos, monkeypatch: pytest.MonkeyPatch) -> None:
    import concurrent.futures
    import threading

    import kratos_aal._cache

    # The failing call is held until the 99 other threads wait for it, however slowly a
    # busy machine schedules them: all 100 share that one call and its failure.
    waiting = 0
    all_in = threading.Event()
    lock = threading.Lock()

    class CountedFuture(concurrent.futures.Future):  # type: ignore[type-arg]
        def result(self, timeout: float | None = None) -> Any:
            nonlocal waiting
            with lock:
                waiting += 1
                if waiting == 99:
                    all_in.set()
            return super().result(timeout)

    run = kratos_aal._cache.Flights.run

    def held(self: Any, key: Any, load: Any, recheck: Any) -> Any:
        def gated() -> Any:
            assert all_in.wait(30), f"only {waiting} of 99 threads joined the call"
            return load()

        return run(self, key, gated, recheck)

    monkeypatch.setattr(kratos_aal._cache, "Future", CountedFuture)
    monkeypatch.setattr(kratos_aal._cache.Flights, "run", held)
    fake.fail("reset")  # once: a second call would reach Kratos and be told 401 (login)
    barrier = threading.Barrier(100)

    def check(_: int) -> Any:
        barrier.wait()
        return client.check(Credentials(cookie="c"), "aal1", APP)

    with fake.client() as client, ThreadPoolExecutor(max_workers=100) as pool:
        decisions = list(pool.map(check, range(100)))
        client._http.close()
    assert {d.outcome for d in decisions} == {Outcome.UNAVAILABLE}
    assert fake.calls[WHOAMI] == 1


async def test_cancelled_waiter_does_not_cancel_the_lookup(fake: FakeKratos) -> None:
    fake.latency = 0.05
    session = fake.session("aal2")
    async with fake.async_client() as client:
        first = asyncio.create_task(client.check(cookie(session), "aal2", APP))
        second = asyncio.create_task(client.check(cookie(session), "aal2", APP))
        await asyncio.sleep(0.01)
        first.cancel()
        assert (await second).allowed
        with pytest.raises(asyncio.CancelledError):
            await first
        await client._injected.aclose()
    assert fake.calls[WHOAMI] == 1


async def test_many_sessions_one_call_each(driver: Driver, fake: FakeKratos) -> None:
    sessions = [fake.session("aal2") for _ in range(100)]
    for i in range(10_000):
        assert (await driver.check(cookie(sessions[i % 100]), "aal2", APP)).allowed
    assert fake.calls[WHOAMI] == 100


# ----------------------------------------------------------------------------- what reaches Kratos


async def test_only_the_kratos_cookie_reaches_kratos(driver: Driver, fake: FakeKratos) -> None:
    session = fake.session("aal2")
    header = f"csrftoken=app-csrf; sessionid=django-session; {session.cookie_header}; theme=dark"
    credentials = Credentials.from_headers({"Cookie": header, "Authorization": "Basic eDp5"})
    assert (await driver.check(credentials, "aal2", APP)).allowed
    sent = fake.requests[-1]
    assert sent.headers.get_list("Cookie") == [session.cookie_header]
    assert "Authorization" not in sent.headers
    assert "app-csrf" not in str(sent.headers.raw)


async def test_tokens_reach_kratos_as_x_session_token(driver: Driver, fake: FakeKratos) -> None:
    session = fake.session("aal2")
    credentials = Credentials.from_headers({"Authorization": f"Bearer {session.token}"})
    assert credentials.is_token
    assert (await driver.check(credentials, "aal2", APP)).allowed
    sent = fake.requests[-1]
    assert sent.headers["X-Session-Token"] == session.token
    assert "Cookie" not in sent.headers


async def test_our_own_http_client_keeps_no_cookies(fake: FakeKratos) -> None:
    # Whoami refreshes a cookie after an extend: it must not be kept for other users.
    session = fake.session("aal2")
    fake.extend(session, 3600)
    transport = fake.transport()
    client = KratosClient(fake.config())
    client._http._transport = transport  # our own client, with a fake transport inside
    assert client.check(cookie(session), "aal2", APP).allowed
    assert fake.requests[-1].headers.get_list("Cookie") == [session.cookie_header]
    assert len(client._http.cookies.jar) == 0
    client.close()


# ----------------------------------------------------------------------------- secrets


async def test_no_secret_in_logs_or_errors(
    make_driver: Any, fake: FakeKratos, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    driver = make_driver(fake)
    session = fake.session("aal1", totp=True)
    secrets = [session.cookie, session.token]
    texts: list[str] = []
    for credentials in (cookie(session), Credentials(token=session.token)):
        texts.append(repr(credentials))
        for requirement in ("aal1", "aal2", Requirement("aal1", max_age=1)):
            texts.append(repr(await driver.check(credentials, requirement, APP)))
        for fault in ("timeout", "reset", "garbage"):
            fake.fail(fault)
            driver.invalidate(credentials)
            texts.append(repr(await driver.check(credentials, "aal1", APP)))
            fake.fail(fault)
            driver.invalidate(credentials)
            with pytest.raises(KratosUnavailable) as raised:
                await driver.whoami(credentials)
            texts += [str(raised.value), repr(raised.value)]
    # A real network failure too, which httpx and httpcore log at DEBUG.
    config = KratosConfig(public_url="http://127.0.0.1:9")
    with KratosClient(config) as real:
        texts.append(repr(real.check(cookie(session), "aal1", APP)))
    assert "kratos_aal decision" in caplog.text
    for secret in secrets:
        assert secret not in caplog.text
        for text in texts:
            assert secret not in text

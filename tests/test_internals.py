"""Edge paths of the second-factor probe, the cache and the coalescers."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import httpx
import pytest

from kratos_aal import Credentials, KratosUnavailable, MalformedResponse
from kratos_aal._cache import MISSING, AsyncFlights, Flights, TTLCache
from kratos_aal._kratos_api import parse_second_factor
from kratos_aal.testing import FakeKratos

from .conftest import APP, Driver


def reply(status: int, body: Any) -> httpx.Response:
    return httpx.Response(status, json=body)


def identity(credentials: Any) -> dict[str, Any]:
    return {"id": "i", "schema_id": "default", "credentials": credentials}


def flow(*groups: str) -> dict[str, Any]:
    return {"id": "f", "ui": {"nodes": [{"group": g, "type": "input"} for g in groups]}}


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        pytest.param(identity({"password": {}}), False, id="password-only"),
        pytest.param(identity({"password": {}, "totp": {"type": "totp"}}), True, id="totp"),
        pytest.param(identity({"lookup_secret": {}}), True, id="lookup"),
        pytest.param(identity({"webauthn": {}}), True, id="webauthn-no-config"),
        pytest.param(
            identity({"webauthn": {"config": {"credentials": [{"is_passwordless": True}]}}}),
            False,
            id="webauthn-passwordless",
        ),
        pytest.param(
            identity({"webauthn": {"config": {"credentials": [{"is_passwordless": False}]}}}),
            True,
            id="webauthn-second-factor",
        ),
        pytest.param(identity(None), False, id="no-credentials"),
        pytest.param(flow("default"), False, id="flow-csrf-only"),
        pytest.param(flow("default", "totp", "totp"), True, id="flow-totp"),
        pytest.param(flow("webauthn"), True, id="flow-webauthn"),
        pytest.param(flow("lookup_secret"), True, id="flow-lookup"),
    ],
)
def test_parse_second_factor(body: Any, expected: bool) -> None:
    assert parse_second_factor(reply(200, body)) is expected


@pytest.mark.parametrize(
    ("response", "error"),
    [
        pytest.param(reply(404, {"error": {}}), KratosUnavailable, id="404"),
        pytest.param(reply(500, {}), KratosUnavailable, id="500"),
        pytest.param(reply(200, []), MalformedResponse, id="list"),
        pytest.param(reply(200, {"ui": {}}), MalformedResponse, id="no-nodes"),
        pytest.param(httpx.Response(200, content=b"\xff"), MalformedResponse, id="not-json"),
    ],
)
def test_parse_second_factor_errors(response: httpx.Response, error: type[Exception]) -> None:
    with pytest.raises(error):
        parse_second_factor(response)


async def test_whoami_without_credentials_makes_no_call(driver: Driver, fake: FakeKratos) -> None:
    assert await driver.whoami(Credentials()) is None
    assert await driver.whoami(Credentials(cookie="unknown")) is None
    session = fake.session("aal2")
    found = await driver.whoami(Credentials(token=session.token))
    assert found is not None and found.id == session.id
    assert fake.calls["/sessions/whoami"] == 2


async def test_clear_cache(driver: Driver, fake: FakeKratos) -> None:
    session = fake.session("aal2")
    await driver.check(Credentials(cookie=session.cookie), "aal2", APP)
    driver.client.clear_cache()
    await driver.check(Credentials(cookie=session.cookie), "aal2", APP)
    assert fake.calls["/sessions/whoami"] == 2


def test_client_needs_a_config() -> None:
    from kratos_aal import KratosClient

    with pytest.raises(TypeError, match="KratosConfig"):
        KratosClient("http://kratos:4433")  # type: ignore[arg-type]


def test_ttl_cache() -> None:
    now = [100.0]
    cache = TTLCache(2, lambda: now[0])
    cache.put("a", 1, 10)
    assert cache.get("a") == 1
    cache.put("a", 2, 0)  # a ttl of 0 drops the key
    assert cache.get("a") is MISSING
    cache.put("b", 1, 5)
    now[0] += 6
    assert cache.get("b") is MISSING and len(cache) == 0
    assert repr(MISSING) == "MISSING"


def test_flights_recheck_under_the_lock_sees_a_finished_load() -> None:
    flights = Flights()
    assert flights.run("k", lambda: pytest.fail("no load"), lambda: "cached") == ("cached", True)
    assert flights.run("k", lambda: "loaded", lambda: MISSING) == ("loaded", False)


def test_flights_follower_gets_its_own_copy_of_the_error() -> None:
    flights = Flights()
    started, release = threading.Event(), threading.Event()
    errors: list[KratosUnavailable] = []

    def load() -> Any:
        started.set()
        release.wait(5)
        raise KratosUnavailable("down", retry_after=3)

    def run() -> None:
        try:
            flights.run("k", load, lambda: MISSING)
        except KratosUnavailable as error:
            errors.append(error)

    leader = threading.Thread(target=run)
    leader.start()
    started.wait(5)
    follower = threading.Thread(target=run)
    follower.start()
    threading.Event().wait(0.1)  # let the follower join the leader's call
    release.set()
    leader.join(5)
    follower.join(5)
    assert len(errors) == 2 and errors[0] is not errors[1]
    assert {e.retry_after for e in errors} == {3}


async def test_async_flights_recheck_and_other_loops() -> None:
    flights = AsyncFlights()

    async def load() -> str:
        await asyncio.sleep(0.01)
        return "loaded"

    assert await flights.run("k", load, lambda: "cached") == ("cached", True)
    assert await flights.run("k", load, lambda: MISSING) == ("loaded", False)

    # A call still running in another event loop is not shared with this one.
    other_started = threading.Event()

    def other_loop() -> None:
        async def main() -> None:
            task = asyncio.ensure_future(flights.run("x", slow, lambda: MISSING))
            other_started.set()
            await task

        async def slow() -> str:
            await asyncio.sleep(0.2)
            return "other"

        asyncio.run(main())

    thread = threading.Thread(target=other_loop)
    thread.start()
    other_started.wait(5)
    await asyncio.sleep(0.02)
    assert await flights.run("x", load, lambda: MISSING) == ("loaded", False)
    thread.join(5)


async def test_logout_url(driver: Driver, fake: FakeKratos) -> None:
    session = fake.session("aal2")
    credentials = Credentials(cookie=session.cookie)
    assert (await driver.check(credentials, "aal2", APP)).allowed
    url = await driver._call("logout_url", credentials, "http://testserver/")
    assert url.startswith(f"{fake.public_url}/self-service/logout?token=")
    assert "return_to=http%3A%2F%2Ftestserver%2F" in url
    # Kratos logs out only the session whose cookie comes with the logout URL.
    with httpx.Client(transport=fake.transport()) as browser:
        answer = browser.get(url, headers={"Cookie": session.cookie_header})
        assert (answer.status_code, answer.headers["Location"]) == (303, "http://testserver/")
    # The cache entry was dropped with the logout: the next check sees the ended session.
    assert (await driver.check(credentials, "aal2", APP)).outcome.value == "login"
    assert await driver._call("logout_url", Credentials(token=session.token)) is None
    assert await driver._call("logout_url", Credentials(cookie="unknown")) is None
    fake.fail("status", status=500, path_prefix="/self-service/logout")
    with pytest.raises(KratosUnavailable):
        await driver._call("logout_url", credentials)


@pytest.mark.parametrize(("status", "body"), [(200, {"logout_url": "http://x/nope"}), (404, {})])
def test_parse_logout_errors(status: int, body: Any) -> None:
    from kratos_aal import KratosConfig
    from kratos_aal._kratos_api import parse_logout

    with pytest.raises(KratosUnavailable):
        parse_logout(KratosConfig(public_url="http://k"), reply(status, body), None)


def test_meters_work_with_an_sdk_that_takes_no_bucket_advice() -> None:
    # OpenTelemetry SDKs before 1.30 refuse explicit_bucket_boundaries_advisory.
    from kratos_aal._observe import _Meters

    calls: list[dict[str, object]] = []

    class OldMeter:
        def create_counter(self, name: str, **kwargs: object) -> str:
            return name

        def create_histogram(self, name: str, unit: str = "", description: str = "") -> str:
            calls.append({"name": name, "unit": unit})
            return name

    class Provider:
        def get_meter(self, name: str, version: str) -> OldMeter:
            return OldMeter()

    meters = _Meters(Provider())
    assert meters.duration == "kratos_aal.kratos.duration"
    assert calls == [{"name": "kratos_aal.kratos.duration", "unit": "s"}]
